package dev.edgesmith.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Scoring of drift statistics ({@code edgesmith.bundle.telemetry.scoring}): each statistic of a window gets an
 * effect size ({@code value}), a p-value and a status; under the window's minimum sample every statistic is
 * {@code insufficient}. Metrics: {@code psi} (a histogram; bootstrap p-value), {@code max_psi} (the largest PSI
 * of the projections on principal directions), {@code shift} (a mean in reference standard deviations; z-test)
 * and {@code mmd} (kernel two-sample test on a live reservoir; permutation p-value).
 */
final class DriftScoring {
    /** Statuses in rising severity, as {@code scoring.STATUSES}. */
    static final List<String> STATUSES = Arrays.asList("no_data", "insufficient", "ok", "warn", "drift",
            "recalibrate");

    private DriftScoring() {
    }

    /** One compared statistic: name, metric, reference, and what its window accumulates. */
    static final class Stat {
        final String name;
        final String metric;
        final List<double[]> refs;  // psi: one histogram; max_psi: one per direction; shift: {mean, std}
        final List<String> bins;  // named bins (predicted class), else null
        final List<double[]> edges;  // bin edges per histogram (null: bins set by the caller)
        final long referenceSamples;  // items behind the reference when not the profile's samples, else 0
        final int width;  // accumulator length (mmd: the projection's dimension)

        Stat(String name, String metric, List<double[]> refs, List<String> bins, List<double[]> edges,
                long referenceSamples, int width) {
            this.name = name;
            this.metric = metric;
            this.refs = refs;
            this.bins = bins;
            this.edges = edges;
            this.referenceSamples = referenceSamples;
            this.width = width;
        }

        static Stat psi(String name, double[] ref, List<String> bins, double[] edges, long referenceSamples) {
            return new Stat(name, "psi", Arrays.asList(ref), bins, edges == null ? null : Arrays.asList(edges),
                    referenceSamples, ref.length);
        }

        Object referenceJson() {
            if ("max_psi".equals(metric)) {
                List<Object> out = new ArrayList<>();
                for (double[] r : refs) {
                    out.add(list(r, -1));
                }
                return out;
            }
            return list(refs.get(0), -1);
        }
    }

    /** The doubles as a JSON list, rounded at {@code digits} decimals (-1: as they are). */
    static List<Object> list(double[] xs, int digits) {
        List<Object> out = new ArrayList<>();
        for (double x : xs) {
            out.add(digits < 0 ? x : DriftStats.round(x, digits));
        }
        return out;
    }

    /**
     * The window's minimum sample ({@code minimum_sample}): {@code minSamples} when set, else the largest
     * window the tests need to detect a {@code drift}-sized effect with {@code power}.
     */
    static long minimumSample(List<Stat> stats, TelemetryConfig c, long m) {
        if (c.minSamples != 0) {
            return c.minSamples;
        }
        double alpha = c.alpha / Math.max(stats.size(), 1);
        long need = 1;
        for (Stat s : stats) {
            if ("psi".equals(s.metric) || "max_psi".equals(s.metric)) {
                double a = alpha / s.refs.size();
                long mm = s.referenceSamples != 0 ? s.referenceSamples : m;
                for (double[] r : s.refs) {
                    long k = DriftStats.requiredSamples(r.length, c.psiDrift, a, c.power, mm);
                    need = Math.max(need, k != 0 ? k : 10 * mm);
                }
            } else if ("shift".equals(s.metric)) {
                need = Math.max(need, DriftStats.shiftSamples(c.shiftDrift, alpha, c.power));
            }
        }
        return need;
    }

    /**
     * A statistic's report entry, scored ({@code monitor._entry} then {@code scoring.score}).
     *
     * @param acc the window's accumulator (flattened {@code directions x bins} for max_psi)
     * @param mmd {@code {value, p, reservoir}} of an mmd statistic, else null
     * @param n items in the window; {@code m}: items in the reference profile
     * @param tests statistics in the window (the Bonferroni divisor); {@code minN}: the minimum sample
     */
    static Map<String, Object> score(Stat s, double[] acc, double[] mmd, long n, long m, TelemetryConfig c,
            int tests, long minN) {
        double alpha = c.alpha / Math.max(tests, 1);
        Map<String, Object> e = new LinkedHashMap<>();
        e.put("name", s.name);
        e.put("metric", s.metric);
        Map<String, Object> detail = new LinkedHashMap<>();
        double value;
        double p;
        String level;
        if ("mmd".equals(s.metric)) {
            value = mmd[0];
            p = mmd[1];
            level = "drift";
            e.put("value", null);
            e.put("p_value", null);
            e.put("reservoir", (long) mmd[2]);
            e.put("mergeable", false);
        } else {
            double[] counts = new double[acc.length];
            for (int k = 0; k < acc.length; k++) {
                counts[k] = DriftStats.round(acc[k], 6);  // scored from the counts the report carries
            }
            long mm = s.referenceSamples != 0 ? s.referenceSamples : m;
            if ("max_psi".equals(s.metric)) {
                List<Object> rows = new ArrayList<>();
                List<Object> per = new ArrayList<>();
                int bins = acc.length / s.refs.size();
                value = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < s.refs.size(); j++) {
                    double[] row = Arrays.copyOfRange(counts, j * bins, (j + 1) * bins);
                    rows.add(list(row, -1));
                    double v = DriftStats.psi(row, s.refs.get(j));
                    per.add(DriftStats.round(v, 4));
                    value = Math.max(value, v);
                }
                e.put("counts", rows);
                p = DriftStats.maxPsiPvalue(value, s.refs, (int) n, (int) mm, c.seed);
                level = c.level("psi", value);
                detail.put("per_direction", per);
            } else if ("psi".equals(s.metric)) {
                e.put("counts", list(counts, -1));
                value = DriftStats.psi(counts, s.refs.get(0));
                p = DriftStats.psiPvalue(value, s.refs.get(0), (int) n, (int) mm, c.seed);
                level = c.level("psi", value);
            } else {  // shift: counts are {items, sum, sum of squares}
                e.put("counts", list(counts, -1));
                double k = counts[0];
                double mean = k != 0 ? counts[1] / k : Double.NaN;
                double std = k != 0 ? Math.sqrt(Math.max(counts[2] / k - mean * mean, 0.0)) : Double.NaN;
                double refMean = s.refs.get(0)[0];
                double refStd = s.refs.get(0)[1];
                double scale = Math.max(Math.max(refStd, 1e-3 * Math.abs(refMean)), 1e-12);
                value = (mean - refMean) / scale;
                p = DriftStats.normalPvalue(value * Math.sqrt(Math.max(k, 1)));
                level = c.level("shift", value);
                detail.put("mean", mean);
                detail.put("std", std);
            }
            e.put("reference", s.referenceJson());
            if (s.referenceSamples != 0) {
                e.put("reference_samples", s.referenceSamples);
            }
            if ("psi".equals(s.metric)) {
                double total = 0;
                for (double x : acc) {
                    total += x;
                }
                total = Math.max(total, 1.0);
                if (s.bins != null) {
                    Map<String, Object> fr = new LinkedHashMap<>();
                    for (int k = 0; k < acc.length; k++) {
                        fr.put(s.bins.get(k), DriftStats.round6(acc[k] / total));
                    }
                    e.put("fractions", fr);
                } else {
                    double[] fr = new double[acc.length];
                    for (int k = 0; k < acc.length; k++) {
                        fr[k] = DriftStats.round6(acc[k] / total);
                    }
                    e.put("fractions", list(fr, -1));
                }
            }
        }
        e.put("value", DriftStats.round6(value));
        e.put("p_value", DriftStats.round6(p));
        e.put("status", n < minN ? "insufficient" : p < alpha ? level : "ok");
        e.putAll(detail);
        return e;
    }

    /** The statistic that sets a report's status: the most severe, then the smallest p-value (first wins). */
    static Map<String, Object> worst(List<Map<String, Object>> stats) {
        Map<String, Object> best = null;
        for (Map<String, Object> s : stats) {
            if (best == null) {
                best = s;
                continue;
            }
            int a = STATUSES.indexOf(s.get("status"));
            int b = STATUSES.indexOf(best.get("status"));
            if (a > b || (a == b && (Double) s.get("p_value") < (Double) best.get("p_value"))) {
                best = s;
            }
        }
        return best;
    }
}
