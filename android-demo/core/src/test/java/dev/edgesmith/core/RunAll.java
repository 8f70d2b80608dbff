package dev.edgesmith.core;

import org.junit.runner.JUnitCore;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;

/** Runs the core's JUnit tests and prints one summary line the Python test reads. */
public final class RunAll {
    private RunAll() {
    }

    public static void main(String[] args) {
        long t0 = System.nanoTime();
        Result r = JUnitCore.runClasses(StatsTest.class, ManifestTest.class, GoldenImageTest.class,
                GoldenTextTest.class);
        for (Failure f : r.getFailures()) {
            System.out.println("FAILED " + f.getTestHeader() + ": " + f.getMessage());
            if (!(f.getException() instanceof AssertionError)) {
                f.getException().printStackTrace(System.out);
            }
        }
        System.out.printf("java core: %d tests, %d failures, %d skipped in %.2f s%n", r.getRunCount(),
                r.getFailureCount(), r.getIgnoreCount() + r.getAssumptionFailureCount(),
                (System.nanoTime() - t0) / 1e9);
        System.exit(r.wasSuccessful() ? 0 : 1);
    }
}
