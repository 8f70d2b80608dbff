package dev.edgesmith.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Shared by the golden drift-report tests. Python's reports against Java's: ids, counts, statuses, the
 * minimum sample and the worst statistic exactly (or within the float tolerance); the Monte-Carlo p-values
 * (PSI bootstrap, MMD permutations) within {@link #monteCarloTolerance}, since Java draws with its own
 * generator. Not compared: the report time, the device name and {@code sketches} (Java writes none).
 */
final class Telemetry {
    private static final Set<String> NOT_COMPARED = new HashSet<>(Arrays.asList(
            "created_utc", "device", "sketches", "statistics"));

    private Telemetry() {
    }

    static TelemetryConfig config(Map<String, Object> scenario) {
        Map<String, Object> c = Json.obj(scenario, "config");
        TelemetryConfig t = new TelemetryConfig();
        t.sampleRate = ((Number) c.get("sample_rate")).doubleValue();
        t.window = ((Number) c.get("window")).intValue();
        t.seed = ((Number) c.get("seed")).longValue();
        t.alpha = ((Number) c.get("alpha")).doubleValue();
        t.power = ((Number) c.get("power")).doubleValue();
        t.minSamples = ((Number) c.get("min_samples")).intValue();
        t.psiWarn = ((Number) c.get("psi_warn")).doubleValue();
        t.psiDrift = ((Number) c.get("psi_drift")).doubleValue();
        t.shiftWarn = ((Number) c.get("shift_warn")).doubleValue();
        t.shiftDrift = ((Number) c.get("shift_drift")).doubleValue();
        t.saturationRecalibrate = ((Number) c.get("saturation_recalibrate")).doubleValue();
        t.reservoir = ((Number) c.get("reservoir")).intValue();
        t.permutations = ((Number) c.get("permutations")).intValue();
        t.device = (String) c.get("device");
        return t;
    }

    /**
     * A JSON-lines file sink under the folder named by system property {@code edgesmith.drift.out}
     * ({@code NAME.jsonl}), so the Python side can read the Java reports; none without the property.
     */
    static DriftMonitor.Sink[] sinks(String name) {
        String dir = System.getProperty("edgesmith.drift.out", "");
        if (dir.isEmpty()) {
            return new DriftMonitor.Sink[0];
        }
        java.io.File file = new java.io.File(dir, name + ".jsonl");
        file.delete();
        return new DriftMonitor.Sink[] {new DriftMonitor.JsonlFile(file)};
    }

    /** What the golden drift tests add up over their scenarios: reports compared, statuses, the largest gap. */
    static final class Tally {
        private int reports;
        private double gap;
        private final List<String> statuses = new ArrayList<>();

        /** Compare one scenario's reports ({@link #assertReports}) and count them. */
        void add(Map<String, Object> scenario, DriftMonitor monitor, double tol) {
            monitor.flush();
            List<Map<String, Object>> got = monitor.reports();
            gap = Math.max(gap, assertReports((String) scenario.get("name"), Json.list(scenario, "reports"), got, tol));
            reports += got.size();
            for (Map<String, Object> r : got) {
                statuses.add((String) r.get("status"));
            }
        }

        /** At least four reports were compared; one summary line for the test log. */
        void finish(String kind) {
            assertTrue("reports compared: " + reports, reports >= 4);
            System.out.println("  " + kind + " drift reports: " + reports + " matched, statuses " + statuses
                    + String.format(java.util.Locale.ROOT, ", largest Monte-Carlo p-value gap %.2f of its tolerance",
                    gap));
        }
    }

    /**
     * How far two Monte-Carlo p-values from {@code draws} null draws may be apart: 4 standard errors of the
     * difference of two independent estimates, {@code sqrt(2 p (1 - p) / draws)} with {@code p} floored at one
     * draw, plus one draw's resolution {@code 1 / (draws + 1)} (tests/android/test_web_demo.py uses the same).
     */
    static double monteCarloTolerance(double p, int draws) {
        double q = Math.max(p, 1.0 / (draws + 1));
        return 4 * Math.sqrt(2 * q * (1 - q) / draws) + 1.0 / (draws + 1);
    }

    /** Python's reports against Java's, field by field; returns the largest p-value gap over its tolerance. */
    @SuppressWarnings("unchecked")
    static double assertReports(String name, List<Object> want, List<Map<String, Object>> got, double tol) {
        assertEquals(name + ": reports", want.size(), got.size());
        double worst = 0;
        for (int i = 0; i < want.size(); i++) {
            String at = name + "[" + i + "]";
            // through JSON and back, as a reader of the JSON-lines file would see the Java report
            Map<String, Object> java = (Map<String, Object>) Json.parse(Json.write(got.get(i)));
            Map<String, Object> w = (Map<String, Object>) want.get(i);
            assertEquals(at + ": keys", new ArrayList<>(w.keySet()), new ArrayList<>(java.keySet()));
            Golden.assertJson(at, w, java, tol, NOT_COMPARED);
            assertEquals(at + ".bundle.created_utc", Json.obj(w, "bundle").get("created_utc"),
                    Json.obj(java, "bundle").get("created_utc"));
            assertTrue(at + ".sketches", Json.obj(java, "sketches").isEmpty());
            assertTrue(at + ".device", !((String) java.get("device")).isEmpty());
            List<Object> ws = Json.list(w, "statistics");
            List<Object> gs = Json.list(java, "statistics");
            assertEquals(at + ".statistics", ws.size(), gs.size());
            long permutations = (Long) Json.obj(w, "config").get("permutations");
            for (int s = 0; s < ws.size(); s++) {
                Map<String, Object> sw = (Map<String, Object>) ws.get(s);
                Map<String, Object> sg = (Map<String, Object>) gs.get(s);
                String path = at + ".statistics[" + s + "]";
                Golden.assertJson(path, sw, sg, tol, "p_value");
                double pw = ((Number) sw.get("p_value")).doubleValue();
                double pg = ((Number) sg.get("p_value")).doubleValue();
                String metric = (String) sw.get("metric");
                double ptol = "mmd".equals(metric) ? monteCarloTolerance(pw, (int) permutations)
                        : metric.endsWith("psi") ? monteCarloTolerance(pw, DriftStats.NULL_DRAWS) : tol;
                assertTrue(path + ".p_value: " + pg + " vs " + pw + " (tolerance " + ptol + ")",
                        Math.abs(pg - pw) <= ptol);
                worst = Math.max(worst, Math.abs(pg - pw) / ptol);
            }
        }
        return worst;
    }
}
