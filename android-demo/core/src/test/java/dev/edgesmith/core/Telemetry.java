package dev.edgesmith.core;

import static org.junit.Assert.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Shared by the golden drift-report tests. */
final class Telemetry {
    private Telemetry() {
    }

    static TelemetryConfig config(Map<String, Object> scenario) {
        Map<String, Object> c = Json.obj(scenario, "config");
        TelemetryConfig t = new TelemetryConfig();
        t.sampleRate = ((Number) c.get("sample_rate")).doubleValue();
        t.window = ((Number) c.get("window")).intValue();
        t.seed = ((Number) c.get("seed")).longValue();
        t.psiWarn = ((Number) c.get("psi_warn")).doubleValue();
        t.psiDrift = ((Number) c.get("psi_drift")).doubleValue();
        t.shiftWarn = ((Number) c.get("shift_warn")).doubleValue();
        t.shiftDrift = ((Number) c.get("shift_drift")).doubleValue();
        return t;
    }

    /** Python's reports against Java's, field by field; the report time is not compared. */
    static void assertReports(String name, List<Object> want, List<Map<String, Object>> got, double tol) {
        assertEquals(name + ": reports", want.size(), got.size());
        for (int i = 0; i < want.size(); i++) {
            // through JSON and back, as a reader of the JSON-lines file would see the Java report
            Object java = Json.parse(Json.write(got.get(i)));
            Map<?, ?> w = (Map<?, ?>) want.get(i);
            Golden.assertJson(name + "[" + i + "]", new ArrayList<>(w.keySet()), new ArrayList<>(((Map<?, ?>) java).keySet()),
                    0, null);
            Golden.assertJson(name + "[" + i + "]", w, java, tol, "created_utc");
            assertEquals(name + "[" + i + "].bundle.created_utc", Json.obj(w, "bundle").get("created_utc"),
                    Json.obj(java, "bundle").get("created_utc"));
        }
    }
}
