package dev.edgesmith.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/** What a model's output means to a user: softmax probabilities, the top classes, cosine of embeddings. */
public final class Outputs {
    private Outputs() {
    }

    /** Softmax of one row of logits, in double precision (as {@code edgesmith predict}). */
    public static double[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double[] p = new double[logits.length];
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            p[i] = Math.exp((double) logits[i] - max);
            sum += p[i];
        }
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
        return p;
    }

    /** One ranked class. */
    public static final class Ranked {
        public final int index;
        public final String label;
        public final double probability;

        Ranked(int index, String label, double probability) {
            this.index = index;
            this.label = label;
            this.probability = probability;
        }

        @Override
        public String toString() {
            return label + " " + String.format("%.4f", probability);
        }
    }

    /** The {@code k} most probable classes, most probable first (ties: lower index first); labels or indices. */
    public static List<Ranked> topK(double[] probs, int k, List<String> labels) {
        Integer[] order = new Integer[probs.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> -probs[i]).thenComparingInt(i -> i));
        List<Ranked> out = new ArrayList<>();
        for (int r = 0; r < Math.min(Math.max(k, 1), probs.length); r++) {
            int i = order[r];
            String label = labels != null && labels.size() == probs.length ? labels.get(i) : String.valueOf(i);
            out.add(new Ranked(i, label, probs[i]));
        }
        return out;
    }

    /** Euclidean norm, in double precision. */
    public static double norm(float[] v) {
        double s = 0;
        for (float x : v) {
            s += (double) x * x;
        }
        return Math.sqrt(s);
    }

    /** Cosine similarity of two embeddings (0 when either is all zeros). */
    public static double cosine(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("embeddings of " + a.length + " and " + b.length + " dimensions");
        }
        double dot = 0;
        for (int i = 0; i < a.length; i++) {
            dot += (double) a[i] * b[i];
        }
        double n = norm(a) * norm(b);
        return n == 0 ? 0 : dot / n;
    }

    /** Row {@code i} of a flat {@code (batch, width)} output. */
    public static float[] row(float[] flat, int width, int i) {
        return Arrays.copyOfRange(flat, i * width, (i + 1) * width);
    }
}
