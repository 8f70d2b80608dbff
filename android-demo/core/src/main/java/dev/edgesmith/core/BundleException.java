package dev.edgesmith.core;

/** A bundle the core refuses: one line naming the file or field and the fix, as the Python side words it. */
public class BundleException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public BundleException(String message) {
        super(message);
    }
}
