// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package org.tensorflow.lite;

public interface Tensor {
 DataType dataType();
 int numBytes();
 int[] shape();
 QuantizationParams quantizationParams();
 class QuantizationParams {
  public QuantizationParams(float scale, int zeroPoint) { }
  public float getScale() { throw new RuntimeException("stub"); }
  public int getZeroPoint() { throw new RuntimeException("stub"); }
 }
}
