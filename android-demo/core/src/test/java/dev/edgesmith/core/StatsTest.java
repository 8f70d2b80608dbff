package dev.edgesmith.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/** The drift statistics' building blocks, the sampler and the JSON reader, with no bundle needed. */
public class StatsTest {
    private static final double[] UNIT = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};

    @Test
    public void binsAreNumpysSearchsortedRightClipped() {
        assertEquals(0, DriftStats.binIndex(-0.5, UNIT));  // outliers clipped into the end bins
        assertEquals(0, DriftStats.binIndex(0.0, UNIT));
        assertEquals(1, DriftStats.binIndex(0.1, UNIT));  // an edge opens its bin
        assertEquals(0, DriftStats.binIndex(Math.nextDown(0.1), UNIT));
        assertEquals(9, DriftStats.binIndex(1.0, UNIT));  // the last bin is closed
        assertEquals(9, DriftStats.binIndex(7.0, UNIT));
        assertArrayEquals(new double[] {0, 2, 4, 8, 16, 32, 64}, DriftStats.tokenLengthEdges(64), 0);
        assertArrayEquals(new double[] {0, 2, 4, 8, 16, 32, 64, 100}, DriftStats.tokenLengthEdges(100), 0);
    }

    @Test
    public void psiHasThePythonFormulaAndFloor() {
        assertEquals(0.0, DriftStats.psi(new double[] {1, 1}, new double[] {1, 1}), 0);
        double want = (1 - 0.5) * Math.log(1 / 0.5) + (1e-4 - 0.5) * Math.log(1e-4 / 0.5);
        assertEquals(want, DriftStats.psi(new double[] {1, 0}, new double[] {0.5, 0.5}), 1e-15);
        assertEquals(0.5, DriftStats.round6(0.5), 0);
        assertEquals(0.123456, DriftStats.round6(0.1234565), 0);  // binary 0.12345649999..., as Python's round
        assertEquals(0.123457, DriftStats.round6(0.1234575), 0);
        assertEquals(3e-6, DriftStats.round6(2.5e-6), 0);  // binary 2.50000000000000000204e-6
        TelemetryConfig c = new TelemetryConfig();
        assertEquals("ok", c.level("psi", 0.0999));
        assertEquals("warn", c.level("psi", 0.1));
        assertEquals("warn", c.level("psi", 0.25));
        assertEquals("drift", c.level("psi", 0.2501));
        assertEquals("warn", c.level("shift", -0.4));
        assertEquals("drift", c.level("shift", -0.51));
    }

    @Test
    public void settingsAreValidated() {
        String[][] bad = {{"sampleRate", "sample_rate: must be in [0, 1]"}, {"window", "window: must be >= 1"},
            {"psiWarn", "psi_warn: must be <= psi_drift"}};
        for (String[] b : bad) {
            TelemetryConfig c = new TelemetryConfig();
            if (b[0].equals("sampleRate")) {
                c.sampleRate = 1.5;
            } else if (b[0].equals("window")) {
                c.window = 0;
            } else {
                c.psiWarn = 0.3;
            }
            try {
                c.validate();
                throw new AssertionError("accepted " + b[0]);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().startsWith(b[1]));
            }
        }
    }

    private static Manifest tinyClassifier() {
        BundleFiles files = new BundleFiles() {
            @Override
            public java.io.InputStream open(String path) {
                String m = "{\"schema_version\": 1, \"preprocessing\": {\"kind\": \"image\"}, \"outputs\": "
                        + "[{\"meaning\": \"logits\"}], \"reference_profile\": {\"samples\": 1000, \"inputs\": "
                        + "{\"channels\": [{\"histogram\": {\"edges\": [0, 0.5, 1], \"fractions\": [0.5, 0.5]}}]}, "
                        + "\"outputs\": {\"predicted_class\": {\"a\": 0.5, \"b\": 0.5}, \"confidence\": "
                        + "{\"histogram\": {\"edges\": [0, 0.5, 1], \"fractions\": [0, 1]}}}}}";
                return new java.io.ByteArrayInputStream(m.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            }

            @Override
            public boolean isFile(String path) {
                return Manifest.MANIFEST.equals(path);
            }

            @Override
            public List<String> listFiles(String folder) {
                return new ArrayList<>();
            }

            @Override
            public String describe(String path) {
                return "memory/" + path;
            }
        };
        return Manifest.read(files, true);
    }

    private static long sampled(double rate, long seed, int step, int total) {
        TelemetryConfig c = new TelemetryConfig();
        c.sampleRate = rate;
        c.window = 1 << 30;
        c.seed = seed;
        DriftMonitor m = new DriftMonitor(c, tinyClassifier(), "onnx");
        List<float[]> px = new ArrayList<>();
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < step; i++) {
            px.add(new float[] {0.2f});
            out.add(new float[] {1f, 0f});
        }
        for (int i = 0; i < total; i += step) {
            m.observeImages(px, out);
        }
        assertEquals(total, m.seen());
        return m.sampled();
    }

    @Test
    public void samplingFollowsItsRateAndSeed() {
        long a = sampled(0.1, 0, 1, 2000);
        long b = sampled(0.1, 1, 1, 2000);
        double sd = Math.sqrt(2000 * 0.1 * 0.9);
        assertTrue(a + " / " + b, Math.abs(a - 200) <= 4 * sd && Math.abs(b - 200) <= 4 * sd && a != b);
        assertEquals(a, sampled(0.1, 0, 8, 2000));  // the same positions of the stream, batched or not
        assertEquals(0, sampled(0.0, 0, 10, 500));
        assertEquals(500, sampled(1.0, 0, 10, 500));
    }

    @Test
    public void windowsEmitAndFlush() {
        TelemetryConfig c = new TelemetryConfig();
        c.sampleRate = 1.0;
        c.window = 4;
        List<String> lines = new ArrayList<>();
        DriftMonitor m = new DriftMonitor(c, tinyClassifier(), "onnx", (rep, line) -> lines.add(line));
        assertEquals("no_data", m.report().get("status"));
        assertNull(m.flush());
        List<float[]> px = new ArrayList<>();
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            px.add(new float[] {0.9f});
            out.add(new float[] {0f, 5f});  // always class b, confident
        }
        assertEquals(2, m.observeImages(px, out).size());
        Map<String, Object> last = m.flush();
        assertEquals(3, lines.size());
        assertEquals(Boolean.FALSE, Json.obj(last, "window").get("full"));
        assertEquals(2L, Json.obj(last, "window").get("samples"));
        assertEquals(10L, Json.obj(last, "window").get("requests_seen"));
        // one class and one pixel bin, far from the reference, but 2 items are below the minimum sample
        assertEquals("insufficient", last.get("status"));
        Map<?, ?> first = (Map<?, ?>) Json.parse(lines.get(0));
        assertEquals("edgesmith.drift/2", first.get("schema"));
        assertEquals(0L, ((Map<?, ?>) first.get("window")).get("index"));
        assertEquals(m.minSamples(), ((Map<?, ?>) first.get("window")).get("min_samples"));
        assertTrue(m.sampleWarning(), m.sampleWarning().contains("below the minimum sample"));
    }

    @Test
    public void pValuesDecideTheAlarm() {
        assertEquals(0.0455002638963584, DriftStats.erfc(Math.sqrt(2)), 1e-15);  // two-sided p of z = 2
        assertEquals(2.0 - 0.0455002638963584, DriftStats.erfc(-Math.sqrt(2)), 1e-15);
        assertEquals(1.5374597944280351e-12, DriftStats.erfc(5), 1e-25);
        assertEquals(1.959963984540054, DriftStats.normalInvCdf(0.975), 1e-13);
        assertEquals(0.05, DriftStats.normalPvalue(1.959963984540054), 1e-13);
        // the minimum samples stats.py documents: exact reference, 1,000- and 359-item profiles
        assertEquals(101, DriftStats.requiredSamples(10, 0.25, 0.01 / 3, 0.8, 0));
        assertEquals(112, DriftStats.requiredSamples(10, 0.25, 0.01 / 3, 0.8, 1000));
        assertEquals(140, DriftStats.requiredSamples(10, 0.25, 0.01 / 3, 0.8, 359));
        assertEquals(0, DriftStats.requiredSamples(10, 0.25, 0.01 / 3, 0.8, 5));  // too noisy a reference
        // two samples of one distribution: PSI is noise, the bootstrap says so; a real shift is significant
        double[] ref = {0.5, 0.5};
        assertTrue(DriftStats.psiPvalue(DriftStats.psi(new double[] {0, 2}, ref), ref, 2, 1000, 0) > 0.1);  // Python: 0.27
        assertTrue(DriftStats.psiPvalue(DriftStats.psi(new double[] {0, 40}, ref), ref, 40, 1000, 0) < 1.0 / 401);
        TelemetryConfig c = new TelemetryConfig();
        c.sampleRate = 1.0;
        c.window = 40;
        c.minSamples = 1;
        DriftMonitor m = new DriftMonitor(c, tinyClassifier(), "onnx");
        assertNull(m.sampleWarning());
        List<float[]> px = new ArrayList<>();
        List<float[]> out = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            px.add(new float[] {0.9f});
            out.add(new float[] {0f, 5f});
        }
        Map<String, Object> rep = m.observeImages(px, out).get(0);
        assertEquals("drift", rep.get("status"));
        assertEquals(3L, Json.obj(rep, "window").get("tests"));
        @SuppressWarnings("unchecked")
        Map<String, Object> cls = (Map<String, Object>) Json.list(rep, "statistics").get(1);
        assertEquals("predicted_class", cls.get("name"));
        assertTrue(cls.toString(), (Double) cls.get("p_value") < 0.01 / 3);
    }

    @Test
    public void jsonRoundTrips() {
        String text = "{\"a\": [1, 2.5, -3e-05, true, null, \"x\\\"\\u00e9\\n\"], \"b\": {}, \"c\": NaN}";
        Object v = Json.parse(text);
        assertEquals(Json.write(v), Json.write(Json.parse(Json.write(v))));
        List<?> a = (List<?>) ((Map<?, ?>) v).get("a");
        assertEquals(1L, a.get(0));
        assertEquals(-3e-05, (Double) a.get(2), 0);
        assertEquals("x\"\u00e9\n", a.get(5));
        assertTrue(Double.isNaN((Double) ((Map<?, ?>) v).get("c")));
    }
}
