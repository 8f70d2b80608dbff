package dev.edgesmith.demo;

/** One bundled model file loaded in an on-device runtime: float or int64 inputs in, the first output out. */
interface ModelRunner extends AutoCloseable {
    /** The bundle's runtime name ({@code onnxruntime}, {@code litert}). */
    String runtime();

    /** Runtime name, version and thread count, for the latency panel. */
    String describe();

    /** One float32 input (images), flat with its shape; returns {@code (batch, width)} rows. */
    float[][] runFloat(String name, float[] data, long[] shape) throws Exception;

    /** Int64 inputs (token ids, attention mask), flat with their common shape. */
    float[][] runLong(String[] names, long[][] data, long[] shape) throws Exception;

    @Override
    void close();
}
