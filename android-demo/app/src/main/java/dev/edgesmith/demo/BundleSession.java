package dev.edgesmith.demo;

import dev.edgesmith.core.BundleException;
import dev.edgesmith.core.BundleFiles;
import dev.edgesmith.core.DriftMonitor;
import dev.edgesmith.core.ImagePreprocessor;
import dev.edgesmith.core.Json;
import dev.edgesmith.core.Manifest;
import dev.edgesmith.core.TelemetryConfig;
import dev.edgesmith.core.WordPieceTokenizer;
import java.io.File;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * A verified bundle with its first on-device format loaded: the manifest's sha256s checked, the first
 * format whose runtime this app has (ONNX Runtime, LiteRT) that passed parity, the bundle's preprocessing,
 * and the drift hook writing JSON-lines reports (and optionally POSTing them).
 */
final class BundleSession implements AutoCloseable {
    /** The runtimes this build has: both from Gradle; ONNX Runtime only in the APK CI assembles (no LiteRT jar). */
    static final List<String> RUNTIMES = available();

    private static List<String> available() {
        List<String> out = new ArrayList<>();
        String[][] probes = {{"onnxruntime", "ai.onnxruntime.OrtEnvironment"}, {"litert", "org.tensorflow.lite.Interpreter"}};
        for (String[] p : probes) {
            try {
                Class.forName(p[1], false, BundleSession.class.getClassLoader());
                out.add(p[0]);
            } catch (ClassNotFoundException e) {
                // not in this build
            }
        }
        return out;
    }

    final Manifest manifest;
    final String format;
    final ModelRunner runner;
    final DriftMonitor monitor;
    final File reports;
    ImagePreprocessor pre;
    WordPieceTokenizer tok;
    private final String[] inputNames;
    private final int step;
    private final int padTo;

    BundleSession(BundleFiles files, int threads, File reports, DriftMonitor.Sink extraSink) throws Exception {
        manifest = Manifest.read(files, true);  // refuses a tampered, incomplete or escaping bundle
        format = manifest.pickFormat(RUNTIMES);
        byte[] model = files.readAll(Manifest.safePath(files, manifest.format(format, "path"), Manifest.MANIFEST));
        String runtime = String.valueOf(manifest.format(format, "runtime"));
        runner = "litert".equals(runtime) ? new LiteRtRunner(model, threads) : new OrtRunner(model, threads);
        inputNames = manifest.inputNames().toArray(new String[0]);
        long[] staticShape = staticShape(manifest.format(format, "static_shapes"));
        Object maxBatch = manifest.format(format, "max_batch");
        step = staticShape != null ? (int) staticShape[0] : maxBatch instanceof Number ? ((Number) maxBatch).intValue() : 64;
        padTo = staticShape != null && staticShape.length == 2 ? (int) staticShape[1] : 0;
        if ("image".equals(manifest.kind())) {
            pre = new ImagePreprocessor(manifest.preprocessing());
        } else {
            tok = WordPieceTokenizer.fromManifest(manifest);
        }
        this.reports = reports;
        TelemetryConfig config = new TelemetryConfig();
        config.sampleRate = 1.0;  // a demo: every prediction; an app in the field samples (0.05-0.1)
        config.window = 20;
        DriftMonitor.Sink file = new DriftMonitor.JsonlFile(reports);
        monitor = extraSink == null ? new DriftMonitor(config, manifest, format, file)
                : new DriftMonitor(config, manifest, format, file, extraSink);
    }

    private static long[] staticShape(Object shapes) {
        if (!(shapes instanceof Map) || ((Map<?, ?>) shapes).isEmpty()) {
            return null;
        }
        List<?> first = (List<?>) ((Map<?, ?>) shapes).values().iterator().next();
        long[] out = new long[first.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) first.get(i)).longValue();
        }
        return out;
    }

    boolean isImage() {
        return pre != null;
    }

    /** Classifies uint8 HWC images (bitmaps' pixels); returns logits rows, after feeding the drift hook. */
    List<float[]> classify(List<int[]> hwcImages) throws Exception {
        List<float[]> units = new ArrayList<>();
        for (int[] img : hwcImages) {
            units.add(pre.unitFromUint8(img, true));
        }
        List<float[]> rows = new ArrayList<>();
        for (int i = 0; i < units.size(); i += step) {
            List<float[]> part = units.subList(i, Math.min(units.size(), i + step));
            List<float[]> inputs = new ArrayList<>();
            for (float[] u : part) {
                inputs.add(pre.normalize(u));
            }
            rows.addAll(Arrays.asList(runner.runFloat(inputNames[0], ImagePreprocessor.batch(inputs), imageShape(part.size()))));
        }
        monitor.observeImages(units, rows);
        return rows;
    }

    private long[] imageShape(int n) {
        return "NHWC".equals(pre.layout()) ? new long[] {n, pre.height(), pre.width(), pre.channels()}
                : new long[] {n, pre.channels(), pre.height(), pre.width()};
    }

    /** Embeds texts with the bundle's tokenizer; returns embedding rows, after feeding the drift hook. */
    List<float[]> embed(List<String> texts) throws Exception {
        List<float[]> rows = new ArrayList<>();
        int[] lengths = new int[texts.size()];
        for (int i = 0; i < texts.size(); i += step) {
            List<String> part = texts.subList(i, Math.min(texts.size(), i + step));
            WordPieceTokenizer.Batch b = tok.encodeBatch(part, padTo);
            rows.addAll(Arrays.asList(runner.runLong(inputNames, feeds(b), new long[] {b.batch, b.seqLen})));
            for (int r = 0; r < b.batch; r++) {
                lengths[i + r] = b.length(r);
            }
        }
        monitor.observeTexts(lengths, rows);
        return rows;
    }

    private long[][] feeds(WordPieceTokenizer.Batch b) {
        long[][] feeds = new long[inputNames.length][];
        for (int k = 0; k < inputNames.length; k++) {
            feeds[k] = "attention_mask".equals(inputNames[k]) ? b.attentionMask
                    : "token_type_ids".equals(inputNames[k]) ? new long[b.inputIds.length] : b.inputIds;
        }
        return feeds;
    }

    /** p50 / p90 milliseconds of {@code runs} model runs on one input after 5 warm-up runs (no preprocessing). */
    double[] latency(int runs) throws Exception {
        double[] t = new double[runs];
        for (int i = -5; i < runs; i++) {
            long t0 = System.nanoTime();
            if (isImage()) {
                runner.runFloat(inputNames[0], pre.normalize(new float[pre.size()]), imageShape(1));
            } else {
                WordPieceTokenizer.Batch b = tok.encodeBatch(Arrays.asList("The quick brown fox jumps over the lazy dog."), padTo);
                runner.runLong(inputNames, feeds(b), new long[] {1, b.seqLen});
            }
            if (i >= 0) {
                t[i] = (System.nanoTime() - t0) / 1e6;
            }
        }
        Arrays.sort(t);
        return new double[] {percentile(t, 0.5), percentile(t, 0.9)};
    }

    static double percentile(double[] sorted, double q) {  // numpy's default (linear)
        double pos = (sorted.length - 1) * q;
        int lo = (int) Math.floor(pos);
        int hi = (int) Math.ceil(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    String summary() {
        Map<String, Object> src = Json.obj(manifest.json(), "source");
        return (src == null ? "bundle" : String.valueOf(src.get("recipe"))) + ": " + manifest.kind() + " → "
                + manifest.outputMeaning() + ", " + format + " on " + runner.describe();
    }

    @Override
    public void close() {
        monitor.flush();
        runner.close();
    }

    /** For messages: a BundleException's one line, else the exception's class and message. */
    static String message(Throwable e) {
        return e instanceof BundleException ? e.getMessage() : e.getClass().getSimpleName() + ": " + e.getMessage();
    }
}
