// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package org.tensorflow.lite;

public final class Interpreter implements AutoCloseable {
 public static class Options { public Options setNumThreads(int n) { throw new RuntimeException("stub"); } }
 public Interpreter(java.nio.ByteBuffer model, Options options) { throw new RuntimeException("stub"); }
 public Tensor getInputTensor(int i) { throw new RuntimeException("stub"); }
 public Tensor getOutputTensor(int i) { throw new RuntimeException("stub"); }
 public void resizeInput(int i, int[] dims) { throw new RuntimeException("stub"); }
 public void allocateTensors() { throw new RuntimeException("stub"); }
 public void runForMultipleInputsOutputs(Object[] inputs, java.util.Map<Integer, Object> outputs) { throw new RuntimeException("stub"); }
 public void close() { }
}
