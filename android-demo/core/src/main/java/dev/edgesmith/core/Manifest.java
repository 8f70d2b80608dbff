package dev.edgesmith.core;

import java.io.IOException;
import java.io.InputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A bundle's {@code edgesmith.json}, read and checked as {@code edgesmith.bundle.manifest.read_manifest}
 * does: schema version, path safety of every listed file, every model and tokenizer file hashed,
 * and (verify) each file's size and sha256.
 */
public final class Manifest {
    /** Highest manifest schema this core reads (the Python side's {@code SCHEMA_VERSION}). */
    public static final int SCHEMA_VERSION = 1;
    public static final String MANIFEST = "edgesmith.json";

    private final Map<String, Object> json;
    private final BundleFiles files;

    private Manifest(Map<String, Object> json, BundleFiles files) {
        this.json = json;
        this.files = files;
    }

    /**
     * Parses and checks a bundle's manifest.
     *
     * @param verify also hash every listed file (the app does this before any file reaches a runtime)
     * @throws BundleException one line naming the file: missing or malformed manifest, unknown schema,
     *     a path leaving the bundle, an unhashed model or tokenizer file, a missing or changed file
     */
    @SuppressWarnings("unchecked")
    public static Manifest read(BundleFiles files, boolean verify) {
        String where = files.describe(MANIFEST);
        if (!files.isFile(MANIFEST)) {
            throw new BundleException(where + ": no bundle manifest here; build one with `edgesmith run`");
        }
        Object parsed;
        try {
            parsed = Json.parse(files.readText(MANIFEST));
        } catch (IOException | IllegalArgumentException e) {
            throw new BundleException(where + ": not valid JSON (" + e.getMessage() + ")");
        }
        Object version = parsed instanceof Map ? ((Map<String, Object>) parsed).get("schema_version") : null;
        if (!(version instanceof Long) || (Long) version < 1 || (Long) version > SCHEMA_VERSION) {
            boolean newer = version instanceof Long && (Long) version > SCHEMA_VERSION;
            throw new BundleException(where + ": schema_version " + pyRepr(version) + " is "
                    + (newer ? "newer than this app reads (" + SCHEMA_VERSION + "); update the app"
                             : "unknown; this app reads schema_version 1 to " + SCHEMA_VERSION));
        }
        Map<String, Object> m = (Map<String, Object>) parsed;
        Map<String, Map<String, Object>> checksums = new LinkedHashMap<>();
        List<Object> sums = Json.list(m, "checksums");
        for (Object c : sums == null ? new ArrayList<>() : sums) {
            Map<String, Object> entry = (Map<String, Object>) c;
            Object rel = entry.get("path");
            safePath(files, rel, where);
            checksums.put((String) rel, entry);
        }
        Map<String, Object> formats = Json.obj(m, "formats");
        for (Map.Entry<String, Object> f : (formats == null ? new LinkedHashMap<String, Object>() : formats).entrySet()) {
            List<Object> rels = new ArrayList<>();
            rels.add(((Map<String, Object>) f.getValue()).get("path"));
            List<Object> more = Json.list(f.getValue(), "files");
            if (more != null) {
                rels.addAll(more);
            }
            for (Object rel : rels) {
                safePath(files, rel, where);
                if (!checksums.containsKey(rel)) {
                    throw new BundleException(where + ": " + f.getKey() + " file " + pyRepr(rel)
                            + " has no sha256 in the manifest; refusing to load");
                }
            }
        }
        String tokenizer = Json.str(Json.obj(m, "preprocessing"), "tokenizer");
        if (tokenizer != null) {
            String folder = safePath(files, tokenizer, where);
            for (String f : files.listFiles(folder)) {
                if (!checksums.containsKey(f)) {
                    throw new BundleException(files.describe(f) + ": not listed in " + MANIFEST
                            + " (the tokenizer would read it); refusing to load");
                }
            }
        }
        if (verify) {
            for (Map<String, Object> c : checksums.values()) {
                verifyFile(files, c);
            }
        }
        return new Manifest(m, files);
    }

    /** {@code rel} normalised, when it stays inside the bundle; else a one-line {@link BundleException}. */
    public static String safePath(BundleFiles files, Object rel, String where) {
        if (!(rel instanceof String) || ((String) rel).isEmpty()) {
            throw leaves(rel, where);
        }
        String r = (String) rel;
        if (r.startsWith("/") || r.contains("\\")) {
            throw leaves(rel, where);
        }
        List<String> parts = new ArrayList<>();
        for (String p : r.split("/")) {
            if (p.equals("..")) {
                throw leaves(rel, where);
            }
            if (!p.isEmpty() && !p.equals(".")) {
                parts.add(p);
            }
        }
        if (!parts.isEmpty() && parts.get(0).contains(":")) {
            throw leaves(rel, where);
        }
        String path = join("/", parts);
        files.checkInside(path, where);
        return path;
    }

    private static BundleException leaves(Object rel, String where) {
        return new BundleException(where + ": file path " + pyRepr(rel)
                + " leaves the bundle (absolute or '..'); refusing to load");
    }

    /** Checks one {@code checksums} entry against the file. */
    public static void verifyFile(BundleFiles files, Map<String, Object> entry) {
        String path = (String) entry.get("path");
        if (!files.isFile(path)) {
            throw new BundleException(files.describe(path) + ": missing from the bundle (listed in " + MANIFEST
                    + "); rebuild it with `edgesmith run`");
        }
        long size;
        String sha;
        try (InputStream in = files.open(path)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 16];
            long n = 0;
            int k;
            while ((k = in.read(buf)) > 0) {
                md.update(buf, 0, k);
                n += k;
            }
            size = n;
            sha = hex(md.digest());
        } catch (IOException e) {
            throw new BundleException(files.describe(path) + ": cannot read (" + e.getMessage() + ")");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        Object want = entry.get("size");
        if (!(want instanceof Long) || (Long) want != size || !sha.equals(entry.get("sha256"))) {
            throw new BundleException(files.describe(path) + ": size or sha256 differs from " + MANIFEST
                    + " (tampered with or corrupted); rebuild the bundle");
        }
    }

    /** {@code String.join}, which Android has only from API 26 (the app's minSdk is 24). */
    static String join(String sep, Iterable<? extends CharSequence> parts) {
        StringBuilder b = new StringBuilder();
        boolean first = true;
        for (CharSequence p : parts) {
            if (!first) {
                b.append(sep);
            }
            first = false;
            b.append(p);
        }
        return b.toString();
    }

    /** Lower-case hex of bytes. */
    public static String hex(byte[] bytes) {
        StringBuilder b = new StringBuilder();
        for (byte x : bytes) {
            b.append(String.format("%02x", x & 0xff));
        }
        return b.toString();
    }

    /** A value as Python's repr would print it in a message ({@code '../x'}, {@code None}, {@code 999}). */
    static String pyRepr(Object v) {
        if (v == null) {
            return "None";
        }
        if (v instanceof String) {
            return "'" + v + "'";
        }
        if (v instanceof Boolean) {
            return (Boolean) v ? "True" : "False";
        }
        return v.toString();
    }

    // ------------------------------------------------------------------ accessors

    /** The parsed manifest. */
    public Map<String, Object> json() {
        return json;
    }

    /** Where the bundle's files are read from. */
    public BundleFiles files() {
        return files;
    }

    public int schemaVersion() {
        return ((Long) json.get("schema_version")).intValue();
    }

    /** {@code preprocessing}: the spec of {@link ImagePreprocessor} or {@link WordPieceTokenizer}. */
    public Map<String, Object> preprocessing() {
        return Json.obj(json, "preprocessing");
    }

    /** {@code image} or {@code text}. */
    public String kind() {
        return Json.str(preprocessing(), "kind");
    }

    /** The model inputs' names, in manifest order. */
    public List<String> inputNames() {
        List<String> out = new ArrayList<>();
        for (Object i : Json.list(json, "inputs")) {
            out.add(Json.str(i, "name"));
        }
        return out;
    }

    /** The first output's meaning: {@code logits} or {@code sentence_embedding}. */
    public String outputMeaning() {
        return Json.str(Json.list(json, "outputs").get(0), "meaning");
    }

    /** Class names, or null (encoders, unlabelled data). */
    public List<String> labels() {
        List<Object> l = Json.list(json, "labels");
        if (l == null) {
            return null;
        }
        List<String> out = new ArrayList<>();
        for (Object x : l) {
            out.add(String.valueOf(x));
        }
        return out;
    }

    /** {@code formats}: per format its path, runtime, precision, parity records. */
    public Map<String, Object> formats() {
        Map<String, Object> f = Json.obj(json, "formats");
        return f == null ? new LinkedHashMap<>() : f;
    }

    /** A format's field ({@code path}, {@code runtime}, ...). */
    public Object format(String name, String field) {
        Object e = formats().get(name);
        return e instanceof Map ? ((Map<?, ?>) e).get(field) : null;
    }

    /**
     * The format to run: among the formats whose runtime is in {@code runtimes} (what this device has),
     * the first that passed both parity checks, else the first; as {@code pick_format(manifest, None)}
     * when every runtime is available.
     */
    public String pickFormat(Collection<String> runtimes) {
        List<String> usable = new ArrayList<>();
        for (Map.Entry<String, Object> e : formats().entrySet()) {
            if (runtimes.contains(String.valueOf(((Map<?, ?>) e.getValue()).get("runtime")))) {
                usable.add(e.getKey());
            }
        }
        if (usable.isEmpty()) {
            List<String> have = new ArrayList<>();
            for (Object e : formats().values()) {
                have.add(String.valueOf(((Map<?, ?>) e).get("runtime")));
            }
            throw new BundleException(files.describe(MANIFEST) + ": no file for the runtimes here ("
                    + join(", ", runtimes) + "); the bundle has: " + join(", ", have));
        }
        for (String f : usable) {
            if (passed(Json.obj(formats(), f))) {
                return f;
            }
        }
        return usable.get(0);
    }

    private static boolean passed(Map<String, Object> entry) {
        for (String k : new String[] {"parity", "bundle_parity"}) {
            Object ok = Json.obj(entry, k) == null ? null : Json.obj(entry, k).get("passed");
            if (!Boolean.TRUE.equals(ok)) {
                return false;
            }
        }
        return true;
    }
}
