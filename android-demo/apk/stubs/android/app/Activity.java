// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.app;

public class Activity extends android.content.Context {
 public static final int RESULT_OK = -1;
 protected void onCreate(android.os.Bundle savedInstanceState) { throw new RuntimeException("stub"); }
 protected void onActivityResult(int requestCode, int resultCode, android.content.Intent data) { throw new RuntimeException("stub"); }
 protected void onDestroy() { throw new RuntimeException("stub"); }
 public void setContentView(android.view.View view) { throw new RuntimeException("stub"); }
 public final void runOnUiThread(Runnable action) { throw new RuntimeException("stub"); }
 public void startActivityForResult(android.content.Intent intent, int requestCode) { throw new RuntimeException("stub"); }
 public android.content.res.AssetManager getAssets() { throw new RuntimeException("stub"); }
 public android.content.ContentResolver getContentResolver() { throw new RuntimeException("stub"); }
 public java.io.File getFilesDir() { throw new RuntimeException("stub"); }
}
