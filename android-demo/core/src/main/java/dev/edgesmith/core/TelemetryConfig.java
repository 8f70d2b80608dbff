package dev.edgesmith.core;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * How a {@link DriftMonitor} samples and judges traffic: the fields, defaults and status rule of
 * {@code edgesmith.bundle.telemetry.TelemetryConfig} (PSI ok &lt; 0.1 &lt;= warn &lt;= 0.25 &lt; drift;
 * mean shift in reference standard deviations ok &lt; 0.32 &lt;= warn &lt;= 0.5 &lt; drift).
 */
public final class TelemetryConfig {
    public double sampleRate = 0.1;
    public int window = 500;
    public long seed = 0;
    public double psiWarn = 0.1;
    public double psiDrift = 0.25;
    public double shiftWarn = 0.32;
    public double shiftDrift = 0.5;

    /** Checks the ranges; throws {@link IllegalArgumentException} naming the field. */
    public TelemetryConfig validate() {
        if (!(sampleRate >= 0 && sampleRate <= 1)) {
            throw new IllegalArgumentException("sample_rate: must be in [0, 1], got " + sampleRate);
        }
        if (window < 1) {
            throw new IllegalArgumentException("window: must be >= 1, got " + window);
        }
        if (!(psiWarn > 0 && psiDrift > 0 && shiftWarn > 0 && shiftDrift > 0)) {
            throw new IllegalArgumentException("thresholds must be > 0");
        }
        if (psiWarn > psiDrift) {
            throw new IllegalArgumentException("psi_warn: must be <= psi_drift (" + psiDrift + ")");
        }
        if (shiftWarn > shiftDrift) {
            throw new IllegalArgumentException("shift_warn: must be <= shift_drift (" + shiftDrift + ")");
        }
        return this;
    }

    /** {@code ok} / {@code warn} / {@code drift} of one score ({@code metric}: psi or shift). */
    public String status(String metric, double value) {
        double v = Math.abs(value);
        double warn = "psi".equals(metric) ? psiWarn : shiftWarn;
        double drift = "psi".equals(metric) ? psiDrift : shiftDrift;
        return v < warn ? "ok" : v <= drift ? "warn" : "drift";
    }

    /** The report's {@code config} block, keyed and ordered as the Python side writes it. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("sample_rate", sampleRate);
        m.put("window", (long) window);
        m.put("seed", seed);
        m.put("psi_warn", psiWarn);
        m.put("psi_drift", psiDrift);
        m.put("shift_warn", shiftWarn);
        m.put("shift_drift", shiftDrift);
        return m;
    }
}
