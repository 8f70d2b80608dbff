package dev.edgesmith.core;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The statistics of {@code edgesmith.bundle.telemetry.stats}: binning, population stability index, rounding,
 * p-values and the minimum sample. Bin edges always come from the manifest's reference profile, so both
 * sides bin alike.
 *
 * <p>The deterministic parts (PSI, z and binomial p-values, the chi-square power behind the minimum sample)
 * follow the Python formulas and agree with them to rounding. The Monte-Carlo parts (the PSI bootstrap null,
 * the MMD permutation null) run the same algorithm with the same number of draws but Java's generator, so
 * their p-values agree with Python's within Monte-Carlo error, not bit for bit.
 */
public final class DriftStats {
    /** Floor of a bin's fraction: an empty bin scores as 0.01%, not log(0) ({@code PSI_EPSILON}). */
    public static final double PSI_EPSILON = 1e-4;
    /** Bootstrap windows per PSI p-value ({@code NULL_DRAWS}): the smallest p-value is 1/401. */
    public static final int NULL_DRAWS = 400;

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

    /** Python's {@code round(v, digits)}. */
    public static double round(double v, int digits) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return v;
        }
        return new BigDecimal(v).setScale(digits, RoundingMode.HALF_EVEN).doubleValue();
    }

    // ------------------------------------------------------------------ significance

    /**
     * {@code (draws, references)} PSIs of {@code n}-item windows drawn from each reference histogram, scored
     * against an {@code m}-item redraw of that reference (a multinomial parametric bootstrap, {@code psi_null}).
     */
    public static double[][] psiNull(List<double[]> references, int n, int m, long seed, int draws) {
        SplittableRandom rng = new SplittableRandom(seed);
        double[][] out = new double[draws][references.size()];
        for (int j = 0; j < references.size(); j++) {
            double[] ref = references.get(j);
            double[] q = new double[ref.length];
            double sum = 0;
            for (int k = 0; k < q.length; k++) {
                q[k] = Math.max(ref[k], 0);
                sum += q[k];
            }
            for (int k = 0; k < q.length; k++) {
                q[k] = sum > 0 ? q[k] / sum : 1.0 / q.length;
            }
            double[] cdf = new double[q.length];
            double c = 0;
            for (int k = 0; k < q.length; k++) {
                c += q[k];
                cdf[k] = c;
            }
            for (int d = 0; d < draws; d++) {
                double[] live = multinomial(Math.max(n, 1), cdf, rng);
                double[] base = m > 0 ? multinomial(m, cdf, rng) : q;
                out[d][j] = psi(live, base);
            }
        }
        return out;
    }

    private static double[] multinomial(int n, double[] cdf, SplittableRandom rng) {
        double[] counts = new double[cdf.length];
        for (int i = 0; i < n; i++) {
            double u = rng.nextDouble() * cdf[cdf.length - 1];
            int k = Arrays.binarySearch(cdf, u);
            k = k >= 0 ? k + 1 : -k - 1;  // the first bin whose cumulative mass exceeds u
            counts[Math.min(k, cdf.length - 1)] += 1;
        }
        return counts;
    }

    /**
     * P(null &gt;= observed) from Monte-Carlo draws, {@code (1 + k) / (1 + B)}; beyond every draw the normal
     * tail of the draws' mean and std, capped at {@code 1 / (1 + B)} ({@code tail_pvalue}).
     */
    public static double tailPvalue(double[] nul, double observed) {
        int k = 0;
        double mean = 0;
        for (double v : nul) {
            if (v >= observed - 1e-12) {
                k++;
            }
            mean += v;
        }
        if (k > 0) {
            return (1.0 + k) / (1.0 + nul.length);
        }
        mean /= nul.length;
        double var = 0;
        for (double v : nul) {
            var += (v - mean) * (v - mean);
        }
        double z = (observed - mean) / Math.max(Math.sqrt(var / nul.length), 1e-12);
        return Math.min(1.0 / (1 + nul.length), 0.5 * erfc(z / Math.sqrt(2)));
    }

    /** P(PSI &gt;= value) for an {@code n}-item window of the reference distribution. */
    public static double psiPvalue(double value, double[] reference, int n, int m, long seed) {
        double[][] nul = psiNull(java.util.Collections.singletonList(reference), n, m, seed, NULL_DRAWS);
        double[] col = new double[nul.length];
        for (int d = 0; d < col.length; d++) {
            col[d] = nul[d][0];
        }
        return tailPvalue(col, value);
    }

    /** P(max PSI over several histograms &gt;= value), each drawn independently. */
    public static double maxPsiPvalue(double value, List<double[]> references, int n, int m, long seed) {
        double[][] nul = psiNull(references, n, m, seed, NULL_DRAWS);
        double[] max = new double[nul.length];
        for (int d = 0; d < max.length; d++) {
            max[d] = Double.NEGATIVE_INFINITY;
            for (double v : nul[d]) {
                max[d] = Math.max(max[d], v);
            }
        }
        return tailPvalue(max, value);
    }

    /** Two-sided p-value of a standard-normal score. */
    public static double normalPvalue(double z) {
        return Double.isFinite(z) ? erfc(Math.abs(z) / Math.sqrt(2)) : 0.0;
    }

    /** One-sided p-value of {@code hits} or more of {@code n} at rate {@code p0} (normal, continuity-corrected). */
    public static double binomialExcessPvalue(double hits, double n, double p0) {
        if (n <= 0 || hits <= n * p0) {
            return 1.0;
        }
        double p = Math.min(Math.max(p0, 1e-6), 1 - 1e-6);
        double z = (hits - 0.5 - n * p) / Math.sqrt(n * p * (1 - p));
        return 0.5 * erfc(z / Math.sqrt(2));
    }

    /**
     * The complementary error function to about 1e-13 relative (libm's {@code erfc} is not in Java): a
     * positive-term series of erf below 2.5, a continued fraction above.
     */
    public static double erfc(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        if (x < 0) {
            return 2 - erfc(-x);
        }
        double x2 = x * x;
        if (x < 2.5) {  // erf(x) = 2/sqrt(pi) e^-x^2 sum 2^k x^(2k+1) / (1 * 3 * ... * (2k+1))
            double t = x;
            double s = x;
            for (int k = 1; k < 500; k++) {
                t *= 2 * x2 / (2 * k + 1);
                double s2 = s + t;
                if (s2 == s) {
                    break;
                }
                s = s2;
            }
            return 1 - 2 / Math.sqrt(Math.PI) * Math.exp(-x2) * s;
        }
        if (x > 27) {
            return 0.0;
        }
        double f = x;  // erfc(x) = e^-x^2 / sqrt(pi) / (x + (1/2) / (x + 1 / (x + (3/2) / (x + ...))))
        for (int k = 60; k > 0; k--) {
            f = x + (k / 2.0) / f;
        }
        return Math.exp(-x2) / (Math.sqrt(Math.PI) * f);
    }

    /** The standard normal quantile ({@code NormalDist().inv_cdf}), by bisection on {@link #erfc}. */
    public static double normalInvCdf(double p) {
        if (!(p > 0 && p < 1)) {
            throw new IllegalArgumentException("p must be in (0, 1), got " + p);
        }
        if (p > 0.5) {
            return -normalInvCdf(1 - p);
        }
        double lo = -40;
        double hi = 0;
        while (true) {
            double mid = 0.5 * (lo + hi);
            if (mid == lo || mid == hi) {
                return mid;
            }
            if (0.5 * erfc(-mid / Math.sqrt(2)) < p) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
    }

    // ------------------------------------------------------------------ power

    /** Survival function of chi-square (Wilson-Hilferty), as {@code stats.chi2_sf}. */
    public static double chi2Sf(double x, double df) {
        if (x <= 0) {
            return 1.0;
        }
        double a = 2 / (9 * df);
        double z = (Math.pow(x / df, 1.0 / 3) - (1 - a)) / Math.sqrt(a);
        return 0.5 * erfc(z / Math.sqrt(2));
    }

    /** The value a chi-square exceeds with probability {@code p} (Wilson-Hilferty). */
    public static double chi2Isf(double p, double df) {
        double a = 2 / (9 * df);
        return df * Math.pow(Math.max(1 - a + normalInvCdf(1 - p) * Math.sqrt(a), 0.0), 3);
    }

    /** Power of the chi-square test on {@code df + 1} bins to detect a true PSI {@code effect}. */
    public static double chi2Power(long n, int df, double effect, double alpha, long m) {
        double scale = 1.0 / n + (m != 0 ? 1.0 / m : 0.0);
        double lam = effect / scale;
        double rho = (df + 2 * lam) / (df + lam);
        double nu = (df + lam) * (df + lam) / (df + 2 * lam);  // Patnaik
        return chi2Sf(chi2Isf(alpha, df) / rho, nu);
    }

    /**
     * The fewest items for which a true PSI of {@code effect} over {@code bins} bins is detected with
     * probability {@code power} at level {@code alpha} ({@code required_samples}); 0 when even an infinite
     * window cannot (Python's None).
     */
    public static long requiredSamples(int bins, double effect, double alpha, double power, long m) {
        int df = Math.max(bins - 1, 1);
        long top = 10_000_000L;
        if (m != 0 && chi2Power(top, df, effect, alpha, m) < power) {
            return 0;
        }
        long lo = 1;
        long hi = top;
        while (lo < hi) {
            long mid = (lo + hi) / 2;
            if (chi2Power(mid, df, effect, alpha, m) >= power) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        return lo;
    }

    /** The fewest items for a two-sided z-test to detect a mean shift of {@code shift} standard deviations. */
    public static long shiftSamples(double shift, double alpha, double power) {
        double z = normalInvCdf(1 - alpha / 2) + normalInvCdf(power);
        return (long) Math.ceil((z / shift) * (z / shift));
    }
}
