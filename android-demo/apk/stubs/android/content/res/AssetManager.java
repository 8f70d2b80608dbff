// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.content.res;

public final class AssetManager implements AutoCloseable {
 public static final int ACCESS_STREAMING = 2;
 public final java.io.InputStream open(String fileName) throws java.io.IOException { throw new RuntimeException("stub"); }
 public final java.io.InputStream open(String fileName, int accessMode) throws java.io.IOException { throw new RuntimeException("stub"); }
 public String[] list(String path) throws java.io.IOException { throw new RuntimeException("stub"); }
 public void close() { }
}
