package dev.edgesmith.core;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.text.SimpleDateFormat;
import dev.edgesmith.core.DriftScoring.Stat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TimeZone;

/**
 * The on-device drift hook: samples predictions and reports drift from the reference profile in the
 * bundle's manifest, with the statistics, tests, thresholds and report fields of
 * {@code edgesmith.bundle.telemetry.DriftMonitor} (report schema {@code edgesmith.drift/2}).
 *
 * <p>Per sampled item: the pixel histogram of each channel (values in [0, 1] before normalisation) or
 * the token length; the predicted class and the top softmax probability (classifiers), or the embedding
 * norm and, when the profile has {@code outputs.embedding}, the projections on its principal directions,
 * the cosine to its centroid and a reservoir for the MMD test (encoders). Every {@code window} sampled items
 * a report goes to the sinks: per statistic its exact counts, effect size, p-value and status, with the
 * window's minimum sample and Bonferroni split. Reports hold window aggregates only, never an input.
 *
 * <p>What differs from the Python hook: sampling, the PSI bootstrap, the MMD permutations and the reservoir
 * use Java's generator, not numpy's (the same seed does not pick the same positions, and Monte-Carlo
 * p-values agree within Monte-Carlo error); {@code sketches} is always empty (no KLL quantile sketches); and
 * there are no {@code saturation} statistics (the probed activations of a static int8 file are not read
 * here). Reports stay readable and mergeable by {@code edgesmith drift}.
 */
public final class DriftMonitor {
    public static final String REPORT_SCHEMA = "edgesmith.drift/2";

    /** Receives each emitted report, and its JSON line. */
    public interface Sink {
        void accept(Map<String, Object> report, String jsonLine);
    }

    /** Appends each report as one JSON line to a file (the Python hook's {@code sink}). */
    public static final class JsonlFile implements Sink {
        private final File file;

        public JsonlFile(File file) {
            this.file = file;
        }

        @Override
        public synchronized void accept(Map<String, Object> report, String jsonLine) {
            File parent = file.getAbsoluteFile().getParentFile();
            if (parent != null) {
                parent.mkdirs();
            }
            try (OutputStream out = new FileOutputStream(file, true)) {
                out.write((jsonLine + "\n").getBytes(StandardCharsets.UTF_8));
            } catch (IOException e) {
                System.err.println("drift telemetry: cannot append to " + file + " (" + e.getMessage()
                        + "); report dropped");
            }
        }
    }

    private final TelemetryConfig config;
    private final List<Sink> sinks = new ArrayList<>();
    private final List<Stat> inputs = new ArrayList<>();
    private final List<Stat> outputs = new ArrayList<>();
    private final boolean classifier;
    private final EmbeddingDrift embedding;  // null: no outputs.embedding in the profile (or a classifier)
    private final long referenceSamples;
    private final long minSamples;
    private final String device;
    private final Map<String, Object> identity = new LinkedHashMap<>();
    private final SplittableRandom rng;
    private final List<Map<String, Object>> reports = new ArrayList<>();
    private double[][] window;
    private EmbeddingDrift.Reservoir reservoir;
    private int windowN;
    private long seen;
    private long sampled;
    private long next;
    private int windows;

    /**
     * A monitor for a bundle.
     *
     * @param format the format being run (recorded in each report's {@code bundle} block)
     * @throws BundleException the manifest has no usable {@code reference_profile} (one line)
     */
    public DriftMonitor(TelemetryConfig config, Manifest manifest, String format, Sink... sinks) {
        this.config = config.validate();
        for (Sink s : sinks) {
            this.sinks.add(s);
        }
        String where = manifest.files().describe(Manifest.MANIFEST);
        Map<String, Object> prof = Json.obj(manifest.json(), "reference_profile");
        if (prof == null) {
            throw new BundleException(where + ": no 'reference_profile' to compare traffic with; rebuild the bundle "
                    + "with a current edgesmith (`edgesmith run`, or write_bundle(run_dir))");
        }
        if (prof.containsKey("error")) {
            throw new BundleException(where + ": 'reference_profile' holds no statistics (profiling failed when the "
                    + "bundle was written: " + prof.get("error") + ")");
        }
        String kind = manifest.kind();
        String meaning = manifest.outputMeaning();
        if ("image".equals(kind)) {
            List<Object> channels = Json.list(part(prof, where, "inputs"), "channels");
            if (channels == null) {
                throw missing(where, "reference_profile.inputs", "channels");
            }
            for (int c = 0; c < channels.size(); c++) {
                inputs.add(hist("pixels[" + c + "]", Json.obj(channels.get(c), "histogram"), where, null));
            }
        } else if ("text".equals(kind)) {
            Map<String, Object> tl = part(part(prof, where, "inputs"), where, "token_length");
            inputs.add(hist("token_length", part(tl, where, "histogram"), where, null));
        } else {
            throw new BundleException(where + ": no drift statistics for " + kind + " inputs");
        }
        Map<String, Object> out = part(prof, where, "outputs");
        classifier = "logits".equals(meaning);
        EmbeddingDrift emb = null;
        if (classifier) {
            Map<String, Object> classes = Json.obj(out, "predicted_class");
            if (classes == null || classes.isEmpty()) {
                throw new BundleException(where + ": reference_profile.outputs.predicted_class is empty");
            }
            double[] ref = new double[classes.size()];
            int i = 0;
            for (Object v : classes.values()) {
                ref[i++] = ((Number) v).doubleValue();
            }
            outputs.add(Stat.psi("predicted_class", ref, new ArrayList<>(classes.keySet()), null, 0));
            outputs.add(hist("confidence", part(part(out, where, "confidence"), where, "histogram"), where, null));
        } else if ("sentence_embedding".equals(meaning)) {
            Map<String, Object> norm = Json.obj(out, "norm");
            if (norm == null || !norm.containsKey("mean") || !norm.containsKey("std")) {
                throw new BundleException(where + ": reference_profile.outputs.norm has no mean / std");
            }
            double[] ref = {((Number) norm.get("mean")).doubleValue(), ((Number) norm.get("std")).doubleValue()};
            outputs.add(new Stat("embedding_norm", "shift", Arrays.asList(ref), null, null, 0, 3));
            Map<String, Object> e = Json.obj(out, "embedding");
            if (e != null) {
                emb = new EmbeddingDrift(e, where);
                int bins = emb.projectionRefs.get(0).length;
                outputs.add(new Stat("embedding_directions", "max_psi", emb.projectionRefs, null, emb.projectionEdges,
                        emb.measuredOn, emb.projectionRefs.size() * bins));
                outputs.add(Stat.psi("centroid_cosine", emb.cosineRef, null, emb.cosineEdges, emb.measuredOn));
                outputs.add(new Stat("embedding_mmd", "mmd", new ArrayList<>(), null, null, 0, emb.directions.length));
            }
        } else {
            throw new BundleException(where + ": no drift statistics for " + meaning + " outputs");
        }
        embedding = emb;
        Object n = prof.get("samples");
        referenceSamples = n instanceof Number ? ((Number) n).longValue() : 0;
        minSamples = DriftScoring.minimumSample(all(), this.config, referenceSamples);
        Map<String, Object> src = Json.obj(manifest.json(), "source");
        identity.put("recipe", src == null ? null : src.get("recipe"));
        identity.put("recipe_sha256", src == null ? null : src.get("recipe_sha256"));
        identity.put("format", format);
        identity.put("created_utc", manifest.json().get("created_utc"));
        device = config.device.isEmpty() ? hostName() : config.device;
        rng = new SplittableRandom(config.seed);
        next = gap() - 1;
        reset();
    }

    private static String hostName() {
        try {
            return java.net.InetAddress.getLocalHost().getHostName();
        } catch (java.io.IOException | SecurityException e) {
            return "android";
        }
    }

    private static BundleException missing(String where, String path, String key) {
        return new BundleException(where + ": '" + path + "' has no '" + key
                + "'; rebuild the bundle with a current edgesmith");
    }

    private static Map<String, Object> part(Map<String, Object> node, String where, String key) {
        Map<String, Object> v = Json.obj(node, key);
        if (v == null) {
            throw missing(where, "reference_profile", key);
        }
        return v;
    }

    private static Stat hist(String name, Map<String, Object> h, String where, List<String> bins) {
        List<Object> edges = Json.list(h, "edges");
        List<Object> fractions = Json.list(h, "fractions");
        if (edges == null || fractions == null || edges.size() != fractions.size() + 1 || edges.size() < 2) {
            throw new BundleException(where + ": reference_profile histogram of " + name
                    + " is malformed (edges / fractions)");
        }
        return Stat.psi(name, Json.doubles(fractions), bins, Json.doubles(edges), 0);
    }

    /** Names of the compared statistics, in report order. */
    public List<String> statistics() {
        List<String> out = new ArrayList<>();
        for (Stat s : all()) {
            out.add(s.name);
        }
        return out;
    }

    private List<Stat> all() {
        List<Stat> out = new ArrayList<>(inputs);
        out.addAll(outputs);
        return out;
    }

    /** The window's minimum sample: below it every statistic is {@code insufficient} (no alarm). */
    public long minSamples() {
        return minSamples;
    }

    /** A warning when the window is below the minimum sample (the Python hook logs the same), else null. */
    public String sampleWarning() {
        if (config.window >= minSamples) {
            return null;
        }
        return String.format(java.util.Locale.ROOT, "drift telemetry: a window of %d items is below the minimum "
                + "sample of %d this bundle's tests need (alpha %.3g, power %.2f); its reports will say "
                + "'insufficient'", config.window, minSamples, config.alpha, config.power);
    }

    // ------------------------------------------------------------------ hot path

    private long gap() {
        double rate = config.sampleRate;
        if (rate <= 0) {
            return Long.MAX_VALUE / 4;
        }
        if (rate >= 1) {
            return 1;
        }
        double u = 1.0 - rng.nextDouble();  // (0, 1]
        return 1 + (long) Math.floor(Math.log(u) / Math.log1p(-rate));
    }

    private synchronized int[] pick(int n) {
        long start = seen;
        long end = seen + n;
        seen = end;
        List<Integer> picked = new ArrayList<>();
        while (next < end) {
            picked.add((int) (next - start));
            next += gap();
        }
        int[] out = new int[picked.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = picked.get(i);
        }
        return out;
    }

    /**
     * Accounts for one batch of images: samples its items and adds them to the window.
     *
     * @param unitChw each image's pixels in [0, 1], CHW, before normalisation ({@link ImagePreprocessor})
     * @param outputs each image's logits
     * @return the reports this call completed (already sent to the sinks)
     */
    public List<Map<String, Object>> observeImages(List<float[]> unitChw, List<float[]> outputs) {
        int[] idx = pick(outputs.size());
        List<double[][]> rows = new ArrayList<>();
        for (int i : idx) {
            double[][] acc = blank();
            float[] x = unitChw.get(i);
            int hw = x.length / inputs.size();
            for (int c = 0; c < inputs.size(); c++) {
                double[] edges = inputs.get(c).edges.get(0);
                for (int j = 0; j < hw; j++) {
                    acc[c][DriftStats.binIndex(x[c * hw + j], edges)] += 1;
                }
            }
            addOutputs(acc, outputs.get(i));
            rows.add(acc);
        }
        return accumulate(rows);
    }

    /**
     * Accounts for one batch of texts.
     *
     * @param tokenLengths tokens per text after truncation, special tokens included
     *     ({@link WordPieceTokenizer#length})
     * @param outputs each text's embedding (or logits)
     */
    public List<Map<String, Object>> observeTexts(int[] tokenLengths, List<float[]> outputs) {
        int[] idx = pick(outputs.size());
        List<double[][]> rows = new ArrayList<>();
        for (int i : idx) {
            double[][] acc = blank();
            acc[0][DriftStats.binIndex(tokenLengths[i], inputs.get(0).edges.get(0))] += 1;
            addOutputs(acc, outputs.get(i));
            rows.add(acc);
        }
        return accumulate(rows);
    }

    private double[][] blank() {
        List<Stat> all = all();
        double[][] acc = new double[all.size()][];
        for (int s = 0; s < acc.length; s++) {
            acc[s] = new double[all.get(s).width];
        }
        return acc;
    }

    private void addOutputs(double[][] acc, float[] out) {
        int at = inputs.size();
        if (classifier) {
            double[] p = Outputs.softmax(out);
            int best = 0;
            for (int k = 1; k < p.length; k++) {
                if (p[k] > p[best]) {
                    best = k;
                }
            }
            acc[at][best] += 1;
            acc[at + 1][DriftStats.binIndex(p[best], outputs.get(1).edges.get(0))] += 1;
            return;
        }
        double v = Outputs.norm(out);
        acc[at][0] += 1;
        acc[at][1] += v;
        acc[at][2] += v * v;
        if (embedding != null) {
            double[] proj = embedding.project(out);
            Stat dirs = outputs.get(1);
            int bins = dirs.width / dirs.refs.size();
            for (int j = 0; j < dirs.refs.size(); j++) {
                acc[at + 1][j * bins + DriftStats.binIndex(proj[j], dirs.edges.get(j))] += 1;
            }
            acc[at + 2][DriftStats.binIndex(embedding.cosine(out), outputs.get(2).edges.get(0))] += 1;
            acc[at + 3] = proj;  // the MMD's row: goes to the reservoir, not summed
        }
    }

    private List<Map<String, Object>> accumulate(List<double[][]> rows) {
        List<Map<String, Object>> done = new ArrayList<>();
        List<Stat> all = all();
        synchronized (this) {
            sampled += rows.size();
            for (double[][] row : rows) {
                for (int s = 0; s < row.length; s++) {
                    if ("mmd".equals(all.get(s).metric)) {
                        reservoir.add(row[s]);
                        continue;
                    }
                    for (int k = 0; k < row[s].length; k++) {
                        window[s][k] += row[s][k];
                    }
                }
                windowN++;
                if (windowN >= config.window) {
                    done.add(build(true));
                    windows++;
                    reset();
                }
            }
        }
        emit(done);
        return done;
    }

    private void reset() {
        window = blank();
        reservoir = new EmbeddingDrift.Reservoir(config.reservoir, config.seed + windows);
        windowN = 0;
    }

    // ------------------------------------------------------------------ reports

    private Map<String, Object> build(boolean full) {
        List<Stat> all = all();
        List<Map<String, Object>> stats = new ArrayList<>();
        if (windowN > 0) {
            for (int s = 0; s < all.size(); s++) {
                double[] mmd = null;
                if ("mmd".equals(all.get(s).metric)) {
                    double[] vp = embedding.mmdTest(reservoir.rows, config.permutations, config.seed);
                    mmd = new double[] {vp[0], vp[1], reservoir.rows.size()};
                }
                stats.add(DriftScoring.score(all.get(s), window[s], mmd, windowN, referenceSamples, config,
                        all.size(), minSamples));
            }
        }
        Map<String, Object> worst = DriftScoring.worst(stats);
        Map<String, Object> w = new LinkedHashMap<>();
        w.put("index", (long) windows);
        w.put("samples", (long) windowN);
        w.put("full", full);
        w.put("requests_seen", seen);
        w.put("sampled_total", sampled);
        w.put("reference_samples", referenceSamples);
        w.put("min_samples", minSamples);
        w.put("tests", (long) all.size());
        Map<String, Object> rep = new LinkedHashMap<>();
        rep.put("schema", REPORT_SCHEMA);
        SimpleDateFormat utc = new SimpleDateFormat("yyyy-MM-dd'T'HH:mm:ss'Z'", java.util.Locale.ROOT);
        utc.setTimeZone(TimeZone.getTimeZone("UTC"));
        rep.put("created_utc", utc.format(new Date()));
        rep.put("device", device);
        rep.put("bundle", new LinkedHashMap<>(identity));
        rep.put("window", w);
        rep.put("config", config.toMap());
        rep.put("status", worst == null ? "no_data" : worst.get("status"));
        rep.put("worst", worst == null ? null : worst.get("name"));
        rep.put("statistics", new ArrayList<Object>(stats));
        rep.put("sketches", new LinkedHashMap<String, Object>());  // no KLL sketches on the device
        return rep;
    }

    /** The current (unfinished) window's report, without emitting or resetting it ({@code no_data} when empty). */
    public synchronized Map<String, Object> report() {
        return build(false);
    }

    /** Emits the current window now ({@code full: false}) and starts a new one; null when it holds no sample. */
    public Map<String, Object> flush() {
        Map<String, Object> rep;
        synchronized (this) {
            if (windowN == 0) {
                return null;
            }
            rep = build(false);
            windows++;
            reset();
        }
        List<Map<String, Object>> one = new ArrayList<>();
        one.add(rep);
        emit(one);
        return rep;
    }

    private void emit(List<Map<String, Object>> done) {
        for (Map<String, Object> rep : done) {
            String line = Json.write(rep);
            synchronized (reports) {
                reports.add(rep);
            }
            for (Sink s : sinks) {
                try {
                    s.accept(rep, line);
                } catch (RuntimeException e) {  // telemetry never breaks inference
                    System.err.println("drift telemetry: a report sink failed: " + e);
                }
            }
        }
    }

    /** Every report emitted so far, oldest first. */
    public List<Map<String, Object>> reports() {
        synchronized (reports) {
            return new ArrayList<>(reports);
        }
    }

    public synchronized long seen() {
        return seen;
    }

    public synchronized long sampled() {
        return sampled;
    }

    public TelemetryConfig config() {
        return config;
    }
}
