// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.database;

public interface Cursor extends java.io.Closeable {
 boolean moveToNext();
 String getString(int columnIndex);
 @Override
 void close();
}
