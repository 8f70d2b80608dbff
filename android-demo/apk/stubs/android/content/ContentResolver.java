// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.content;

public abstract class ContentResolver {
 public final android.database.Cursor query(android.net.Uri uri, String[] projection, String selection, String[] selectionArgs, String sortOrder) { throw new RuntimeException("stub"); }
 public final java.io.InputStream openInputStream(android.net.Uri uri) throws java.io.FileNotFoundException { throw new RuntimeException("stub"); }
 public void takePersistableUriPermission(android.net.Uri uri, int modeFlags) { throw new RuntimeException("stub"); }
}
