package dev.edgesmith.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Drift of sentence embeddings ({@code edgesmith.bundle.telemetry.embedding}): projections on the reference's
 * principal directions, the cosine to its centroid, and a kernel two-sample test (unbiased MMD&#178;, Gaussian
 * kernel at the profile's bandwidth) between the profile's sample of projections and a reservoir of live ones,
 * with a permutation p-value. Built from {@code reference_profile.outputs.embedding}.
 */
public final class EmbeddingDrift {
    final double[] centroid;
    final double[][] directions;
    final List<double[]> projectionRefs = new ArrayList<>();  // fractions per projection histogram
    final List<double[]> projectionEdges = new ArrayList<>();
    final double[] cosineRef;
    final double[] cosineEdges;
    final double[][] sample;
    final double bandwidth;
    final long measuredOn;

    EmbeddingDrift(Map<String, Object> prof, String where) {
        try {
            centroid = Json.doubles(Json.list(prof, "centroid"));
            directions = matrix(Json.list(prof, "directions"));
            for (Object h : Json.list(prof, "projection_histograms")) {
                projectionRefs.add(Json.doubles(Json.list(h, "fractions")));
                projectionEdges.add(Json.doubles(Json.list(h, "edges")));
            }
            Map<String, Object> cos = Json.obj(prof, "centroid_cosine");
            cosineRef = Json.doubles(Json.list(cos, "fractions"));
            cosineEdges = Json.doubles(Json.list(cos, "edges"));
            sample = matrix(Json.list(prof, "sample"));
            double bw = ((Number) prof.get("bandwidth")).doubleValue();
            bandwidth = bw == 0 ? 1.0 : bw;
            Object m = prof.get("measured_on");
            measuredOn = m instanceof Number ? ((Number) m).longValue() : 0;
        } catch (RuntimeException e) {
            throw new BundleException(where + ": reference_profile.outputs.embedding is malformed (" + e + ")");
        }
        if (projectionRefs.isEmpty()) {
            throw new BundleException(where + ": reference_profile.outputs.embedding has no projection_histograms");
        }
    }

    private static double[][] matrix(List<Object> rows) {
        double[][] out = new double[rows.size()][];
        for (int i = 0; i < out.length; i++) {
            @SuppressWarnings("unchecked")
            List<Object> row = (List<Object>) rows.get(i);
            out[i] = Json.doubles(row);
        }
        return out;
    }

    /** Coordinates of an embedding in the reference's principal space. */
    double[] project(float[] emb) {
        double[] out = new double[directions.length];
        for (int j = 0; j < directions.length; j++) {
            double s = 0;
            for (int k = 0; k < centroid.length; k++) {
                s += ((double) emb[k] - centroid[k]) * directions[j][k];
            }
            out[j] = s;
        }
        return out;
    }

    /** Cosine of an embedding to the reference centroid. */
    double cosine(float[] emb) {
        double cc = 0;
        double dot = 0;
        double xx = 0;
        for (int k = 0; k < centroid.length; k++) {
            cc += centroid[k] * centroid[k];
            dot += emb[k] * centroid[k];
            xx += (double) emb[k] * emb[k];
        }
        return dot / Math.max(Math.sqrt(cc), 1e-12) / Math.max(Math.sqrt(xx), 1e-12);
    }

    /**
     * Unbiased MMD&#178; between the profile's sample and {@code live}, and its permutation p-value
     * ({@code mmd_test}): {@code {value, p}}, or {@code {0, 1}} below 8 live rows.
     */
    double[] mmdTest(List<double[]> live, int permutations, long seed) {
        if (live.size() < 8) {
            return new double[] {0.0, 1.0};
        }
        int n = sample.length;
        int m = live.size();
        int t = n + m;
        double[][] z = new double[t][];
        for (int i = 0; i < n; i++) {
            z[i] = sample[i];
        }
        for (int i = 0; i < m; i++) {
            z[n + i] = live.get(i);
        }
        double[] sq = new double[t];
        for (int i = 0; i < t; i++) {
            for (double v : z[i]) {
                sq[i] += v * v;
            }
        }
        double[][] k = new double[t][t];
        double g = 2 * bandwidth * bandwidth;
        for (int i = 0; i < t; i++) {
            for (int j = i + 1; j < t; j++) {
                double dot = 0;
                for (int d = 0; d < z[i].length; d++) {
                    dot += z[i][d] * z[j][d];
                }
                double v = Math.exp(-Math.max(sq[i] + sq[j] - 2 * dot, 0.0) / g);
                k[i][j] = v;
                k[j][i] = v;
            }
        }
        int[] order = new int[t];
        boolean[] first = new boolean[t];
        for (int i = 0; i < t; i++) {
            order[i] = i;
        }
        double observed = mmd(k, order, first, n, m);
        SplittableRandom rng = new SplittableRandom(seed);
        double[] nul = new double[permutations];
        for (int p = 0; p < permutations; p++) {
            for (int i = t - 1; i > 0; i--) {  // Fisher-Yates
                int j = rng.nextInt(i + 1);
                int tmp = order[i];
                order[i] = order[j];
                order[j] = tmp;
            }
            nul[p] = mmd(k, order, first, n, m);
        }
        return new double[] {observed, DriftStats.tailPvalue(nul, observed)};
    }

    /** MMD&#178; with the first {@code n} of {@code order} as one sample and the rest as the other. */
    private static double mmd(double[][] k, int[] order, boolean[] first, int n, int m) {
        java.util.Arrays.fill(first, false);
        for (int i = 0; i < n; i++) {
            first[order[i]] = true;
        }
        double aa = 0;
        double bb = 0;
        double ab = 0;
        for (int i = 0; i < k.length; i++) {
            double[] row = k[i];
            for (int j = i + 1; j < k.length; j++) {
                if (first[i] == first[j]) {
                    if (first[i]) {
                        aa += row[j];
                    } else {
                        bb += row[j];
                    }
                } else {
                    ab += row[j];
                }
            }
        }
        return 2 * aa / ((double) n * (n - 1)) + 2 * bb / ((double) m * (m - 1)) - 2 * ab / ((double) n * m);
    }

    /** A uniform sample of at most {@code size} rows of a stream (Vitter's algorithm R). */
    static final class Reservoir {
        final List<double[]> rows = new ArrayList<>();
        final int size;
        final SplittableRandom rng;
        long seen;

        Reservoir(int size, long seed) {
            this.size = size;
            this.rng = new SplittableRandom(seed);
        }

        void add(double[] row) {
            if (seen < size) {
                rows.add(row);
            } else {
                long j = rng.nextLong(seen + 1);
                if (j < size) {
                    rows.set((int) j, row);
                }
            }
            seen++;
        }
    }
}
