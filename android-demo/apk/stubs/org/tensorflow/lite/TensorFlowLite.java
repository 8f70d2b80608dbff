// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package org.tensorflow.lite;

public final class TensorFlowLite {
 public static String runtimeVersion() { throw new RuntimeException("stub"); }
}
