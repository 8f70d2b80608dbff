// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.content;

public abstract class Context {
 public abstract android.content.res.AssetManager getAssets();
 public abstract ContentResolver getContentResolver();
 public abstract java.io.File getFilesDir();
}
