// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.content;

public class Intent {
 public static final String ACTION_OPEN_DOCUMENT_TREE = "android.intent.action.OPEN_DOCUMENT_TREE";
 public static final String ACTION_GET_CONTENT = "android.intent.action.GET_CONTENT";
 public static final int FLAG_GRANT_READ_URI_PERMISSION = 1;
 public Intent(String action) { throw new RuntimeException("stub"); }
 public Intent setType(String type) { throw new RuntimeException("stub"); }
 public android.net.Uri getData() { throw new RuntimeException("stub"); }
 public android.os.Bundle getExtras() { throw new RuntimeException("stub"); }
}
