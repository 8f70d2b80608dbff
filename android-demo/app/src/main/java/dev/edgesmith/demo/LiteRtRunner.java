package dev.edgesmith.demo;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;

/**
 * A bundle's {@code .tflite} file in LiteRT (Interpreter API, CPU with XNNPACK). Static-shape files take
 * one item per call (the manifest's {@code static_shapes}); int8 / uint8 inputs and outputs are quantized
 * and dequantized with the tensor's own scale and zero point, as ai-edge-litert does in Python.
 */
final class LiteRtRunner implements ModelRunner {
    private final Interpreter interpreter;
    private final int threads;

    LiteRtRunner(byte[] model, int threads) {
        this.threads = threads;
        ByteBuffer buf = ByteBuffer.allocateDirect(model.length).order(ByteOrder.nativeOrder());
        buf.put(model).rewind();
        interpreter = new Interpreter(buf, new Interpreter.Options().setNumThreads(threads));
    }

    @Override
    public String runtime() {
        return "litert";
    }

    @Override
    public String describe() {
        return "LiteRT " + org.tensorflow.lite.TensorFlowLite.runtimeVersion() + " (CPU, XNNPACK), " + threads + " thread(s)";
    }

    private void prepare(int index, long[] shape) {
        int[] want = new int[shape.length];
        for (int i = 0; i < shape.length; i++) {
            want[i] = (int) shape[i];
        }
        if (!java.util.Arrays.equals(interpreter.getInputTensor(index).shape(), want)) {
            interpreter.resizeInput(index, want);
        }
    }

    @Override
    public float[][] runFloat(String name, float[] data, long[] shape) {
        prepare(0, shape);
        interpreter.allocateTensors();
        Tensor in = interpreter.getInputTensor(0);
        ByteBuffer buf = ByteBuffer.allocateDirect(in.numBytes()).order(ByteOrder.nativeOrder());
        for (float v : data) {
            putQuantized(buf, in, v);
        }
        buf.rewind();
        return run(new Object[] {buf});
    }

    private static void putQuantized(ByteBuffer buf, Tensor t, float v) {
        DataType type = t.dataType();
        if (type == DataType.FLOAT32) {
            buf.putFloat(v);
            return;
        }
        Tensor.QuantizationParams q = t.quantizationParams();
        int lo = type == DataType.UINT8 ? 0 : -128;
        int hi = type == DataType.UINT8 ? 255 : 127;
        int x = Math.round(v / q.getScale()) + q.getZeroPoint();
        buf.put((byte) Math.max(lo, Math.min(hi, x)));
    }

    @Override
    public float[][] runLong(String[] names, long[][] data, long[] shape) {
        Object[] inputs = new Object[names.length];
        for (int i = 0; i < names.length; i++) {
            prepare(i, shape);
        }
        interpreter.allocateTensors();
        for (int i = 0; i < names.length; i++) {
            Tensor t = interpreter.getInputTensor(i);
            ByteBuffer buf = ByteBuffer.allocateDirect(t.numBytes()).order(ByteOrder.nativeOrder());
            for (long v : data[i]) {
                if (t.dataType() == DataType.INT64) {
                    buf.putLong(v);
                } else {
                    buf.putInt((int) v);
                }
            }
            buf.rewind();
            inputs[i] = buf;
        }
        return run(inputs);
    }

    private float[][] run(Object[] inputs) {
        Tensor out = interpreter.getOutputTensor(0);
        ByteBuffer buf = ByteBuffer.allocateDirect(out.numBytes()).order(ByteOrder.nativeOrder());
        java.util.Map<Integer, Object> outputs = new java.util.HashMap<>();
        outputs.put(0, buf);
        interpreter.runForMultipleInputsOutputs(inputs, outputs);
        int[] shape = interpreter.getOutputTensor(0).shape();
        int rows = shape[0];
        int width = shape[shape.length - 1];
        buf.rewind();
        float[][] result = new float[rows][width];
        Tensor.QuantizationParams q = out.quantizationParams();
        for (int r = 0; r < rows; r++) {
            for (int k = 0; k < width; k++) {
                DataType type = out.dataType();
                if (type == DataType.FLOAT32) {
                    result[r][k] = buf.getFloat();
                } else {
                    int x = type == DataType.UINT8 ? buf.get() & 0xff : buf.get();
                    result[r][k] = (x - q.getZeroPoint()) * q.getScale();
                }
            }
        }
        return result;
    }

    @Override
    public void close() {
        interpreter.close();
    }
}
