package dev.edgesmith.demo;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import java.nio.FloatBuffer;
import java.nio.LongBuffer;
import java.util.Collections;
import java.util.HashMap;
import java.util.Map;

/** A bundle's {@code .onnx} file in ONNX Runtime Android (CPU execution provider, as the Python side runs it). */
final class OrtRunner implements ModelRunner {
    private final OrtEnvironment env = OrtEnvironment.getEnvironment();
    private final OrtSession session;
    private final int threads;

    OrtRunner(byte[] model, int threads) throws OrtException {
        this.threads = threads;
        OrtSession.SessionOptions options = new OrtSession.SessionOptions();
        options.setIntraOpNumThreads(threads);
        session = env.createSession(model, options);
    }

    @Override
    public String runtime() {
        return "onnxruntime";
    }

    @Override
    public String describe() {
        return "ONNX Runtime Android " + OrtEnvironment.getEnvironment().getVersion() + " (CPU), " + threads + " thread(s)";
    }

    @Override
    public float[][] runFloat(String name, float[] data, long[] shape) throws OrtException {
        try (OnnxTensor t = OnnxTensor.createTensor(env, FloatBuffer.wrap(data), shape);
             OrtSession.Result r = session.run(Collections.singletonMap(name, t))) {
            return (float[][]) r.get(0).getValue();
        }
    }

    @Override
    public float[][] runLong(String[] names, long[][] data, long[] shape) throws OrtException {
        Map<String, OnnxTensor> feeds = new HashMap<>();
        try {
            for (int i = 0; i < names.length; i++) {
                feeds.put(names[i], OnnxTensor.createTensor(env, LongBuffer.wrap(data[i]), shape));
            }
            try (OrtSession.Result r = session.run(feeds)) {
                return (float[][]) r.get(0).getValue();
            }
        } finally {
            for (OnnxTensor t : feeds.values()) {
                t.close();
            }
        }
    }

    @Override
    public void close() {
        try {
            session.close();
        } catch (OrtException e) {
            // closing a session that failed to run: nothing left to free
        }
    }
}
