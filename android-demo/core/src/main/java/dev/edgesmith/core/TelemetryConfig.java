package dev.edgesmith.core;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * How a {@link DriftMonitor} samples and judges traffic: the fields, defaults and rules of
 * {@code edgesmith.bundle.telemetry.TelemetryConfig}. A statistic alarms only when its p-value is below
 * {@code alpha} split evenly over the window's statistics (Bonferroni) and the window holds its minimum
 * sample; its effect size then sets the level (PSI ok &lt; 0.1 &lt;= warn &lt;= 0.25 &lt; drift; mean shift in
 * reference standard deviations ok &lt; 0.32 &lt;= warn &lt;= 0.5 &lt; drift).
 */
public final class TelemetryConfig {
    public double sampleRate = 0.1;
    public int window = 500;
    public long seed = 0;
    public double alpha = 0.01;
    public double power = 0.8;
    public int minSamples = 0;
    public double psiWarn = 0.1;
    public double psiDrift = 0.25;
    public double shiftWarn = 0.32;
    public double shiftDrift = 0.5;
    public double saturationRecalibrate = 0.01;
    public int reservoir = 200;
    public int permutations = 200;
    public String device = "";

    /** Checks the ranges; throws {@link IllegalArgumentException} naming the field. */
    public TelemetryConfig validate() {
        if (!(sampleRate >= 0 && sampleRate <= 1)) {
            throw new IllegalArgumentException("sample_rate: must be in [0, 1], got " + sampleRate);
        }
        if (window < 1) {
            throw new IllegalArgumentException("window: must be >= 1, got " + window);
        }
        if (!(alpha > 0 && alpha < 1)) {
            throw new IllegalArgumentException("alpha: must be in (0, 1), got " + alpha);
        }
        if (!(power > 0 && power < 1)) {
            throw new IllegalArgumentException("power: must be in (0, 1), got " + power);
        }
        if (minSamples < 0) {
            throw new IllegalArgumentException("min_samples: must be >= 0, got " + minSamples);
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
        if (!(saturationRecalibrate > 0 && saturationRecalibrate <= 1)) {
            throw new IllegalArgumentException("saturation_recalibrate: must be in (0, 1], got " + saturationRecalibrate);
        }
        if (reservoir < 8) {
            throw new IllegalArgumentException("reservoir: must be >= 8, got " + reservoir);
        }
        if (permutations < 20) {
            throw new IllegalArgumentException("permutations: must be >= 20, got " + permutations);
        }
        return this;
    }

    /** {@code ok} / {@code warn} / {@code drift} of one effect size ({@code metric}: psi or shift). */
    public String level(String metric, double value) {
        double v = Math.abs(value);
        double warn = "shift".equals(metric) ? shiftWarn : psiWarn;
        double drift = "shift".equals(metric) ? shiftDrift : psiDrift;
        return v < warn ? "ok" : v <= drift ? "warn" : "drift";
    }

    /** The report's {@code config} block, keyed and ordered as the Python side writes it. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("sample_rate", sampleRate);
        m.put("window", (long) window);
        m.put("seed", seed);
        m.put("alpha", alpha);
        m.put("power", power);
        m.put("min_samples", (long) minSamples);
        m.put("psi_warn", psiWarn);
        m.put("psi_drift", psiDrift);
        m.put("shift_warn", shiftWarn);
        m.put("shift_drift", shiftDrift);
        m.put("saturation_recalibrate", saturationRecalibrate);
        m.put("reservoir", (long) reservoir);
        m.put("permutations", (long) permutations);
        m.put("device", device);
        return m;
    }
}
