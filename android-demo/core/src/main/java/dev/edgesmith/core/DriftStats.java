package dev.edgesmith.core;

import java.math.BigDecimal;
import java.math.RoundingMode;

/**
 * The statistics of {@code edgesmith.bundle.telemetry}: binning, population stability index, rounding.
 * Bin edges always come from the manifest's reference profile, so both sides bin alike.
 */
public final class DriftStats {
    /** Floor of a bin's fraction: an empty bin scores as 0.01%, not log(0) ({@code PSI_EPSILON}). */
    public static final double PSI_EPSILON = 1e-4;

    private DriftStats() {
    }

    /** The bin of {@code v}: {@code edges[i] <= v < edges[i+1]}, the last bin closed, outliers clipped in. */
    public static int binIndex(double v, double[] edges) {
        int i = 0;
        int lo = 0;
        int hi = edges.length;  // numpy searchsorted(side="right"): the first edge > v
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (edges[mid] <= v) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        i = lo - 1;
        return Math.max(0, Math.min(i, edges.length - 2));
    }

    /** Token-length bin edges: 0, powers of two below {@code maxLength}, {@code maxLength}. */
    public static double[] tokenLengthEdges(int maxLength) {
        int n = 1;
        for (int i = 1; i < 16; i++) {
            if ((1 << i) < maxLength) {
                n++;
            }
        }
        double[] e = new double[n + 1];
        int k = 1;
        for (int i = 1; i < 16; i++) {
            if ((1 << i) < maxLength) {
                e[k++] = 1 << i;
            }
        }
        e[n] = maxLength;
        return e;
    }

    /** PSI of two distributions over the same bins (counts or fractions; each normalised, then floored at eps). */
    public static double psi(double[] live, double[] reference) {
        double[] p = floored(live);
        double[] q = floored(reference);
        double s = 0;
        for (int i = 0; i < p.length; i++) {
            s += (p[i] - q[i]) * Math.log(p[i] / q[i]);
        }
        return s;
    }

    private static double[] floored(double[] a) {
        double sum = 0;
        for (double x : a) {
            sum += x;
        }
        sum = Math.max(sum, 1e-300);
        double[] out = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            out[i] = Math.max(a[i] / sum, PSI_EPSILON);
        }
        return out;
    }

    /** Python's {@code round(v, 6)}: the exact binary value rounded half-even at 6 decimals. */
    public static double round6(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return v;
        }
        return new BigDecimal(v).setScale(6, RoundingMode.HALF_EVEN).doubleValue();
    }
}
