package dev.edgesmith.core;

import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small JSON reader and writer, so the core needs no library on the JVM or on Android.
 *
 * <p>Objects read as {@link LinkedHashMap} (key order kept, as Python's json keeps it),
 * arrays as {@link ArrayList}, integers as {@link Long}, other numbers as {@link Double}.
 */
public final class Json {
    private final String s;
    private int at;

    private Json(String s) {
        this.s = s;
    }

    /** Parses one JSON value; throws {@link IllegalArgumentException} naming the offset. */
    public static Object parse(String text) {
        Json p = new Json(text);
        p.ws();
        Object v = p.value();
        p.ws();
        if (p.at != text.length()) {
            throw p.error("trailing characters");
        }
        return v;
    }

    private IllegalArgumentException error(String what) {
        return new IllegalArgumentException("invalid JSON at offset " + at + ": " + what);
    }

    private void ws() {
        while (at < s.length()) {
            char c = s.charAt(at);
            if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
                at++;
            } else {
                break;
            }
        }
    }

    private Object value() {
        if (at >= s.length()) {
            throw error("unexpected end");
        }
        char c = s.charAt(at);
        switch (c) {
            case '{':
                return object();
            case '[':
                return array();
            case '"':
                return string();
            case 't':
                return literal("true", Boolean.TRUE);
            case 'f':
                return literal("false", Boolean.FALSE);
            case 'n':
                return literal("null", null);
            case 'N':
                return literal("NaN", Double.NaN);
            case 'I':
                return literal("Infinity", Double.POSITIVE_INFINITY);
            default:
                return number();
        }
    }

    private Object literal(String word, Object v) {
        if (!s.startsWith(word, at)) {
            throw error("expected " + word);
        }
        at += word.length();
        return v;
    }

    private Map<String, Object> object() {
        Map<String, Object> m = new LinkedHashMap<>();
        at++;
        ws();
        if (peek() == '}') {
            at++;
            return m;
        }
        while (true) {
            ws();
            if (peek() != '"') {
                throw error("expected a key");
            }
            String k = string();
            ws();
            if (peek() != ':') {
                throw error("expected ':'");
            }
            at++;
            ws();
            m.put(k, value());
            ws();
            char c = peek();
            at++;
            if (c == '}') {
                return m;
            }
            if (c != ',') {
                throw error("expected ',' or '}'");
            }
        }
    }

    private List<Object> array() {
        List<Object> a = new ArrayList<>();
        at++;
        ws();
        if (peek() == ']') {
            at++;
            return a;
        }
        while (true) {
            ws();
            a.add(value());
            ws();
            char c = peek();
            at++;
            if (c == ']') {
                return a;
            }
            if (c != ',') {
                throw error("expected ',' or ']'");
            }
        }
    }

    private char peek() {
        if (at >= s.length()) {
            throw error("unexpected end");
        }
        return s.charAt(at);
    }

    private String string() {
        StringBuilder b = new StringBuilder();
        at++;
        while (true) {
            char c = peek();
            at++;
            if (c == '"') {
                return b.toString();
            }
            if (c != '\\') {
                b.append(c);
                continue;
            }
            char e = peek();
            at++;
            switch (e) {
                case 'n': b.append('\n'); break;
                case 't': b.append('\t'); break;
                case 'r': b.append('\r'); break;
                case 'b': b.append('\b'); break;
                case 'f': b.append('\f'); break;
                case 'u':
                    if (at + 4 > s.length()) {
                        throw error("short \\u escape");
                    }
                    b.append((char) Integer.parseInt(s.substring(at, at + 4), 16));
                    at += 4;
                    break;
                default: b.append(e);
            }
        }
    }

    private Object number() {
        int start = at;
        boolean integral = true;
        if (peek() == '-') {
            at++;
            if (s.startsWith("Infinity", at)) {
                at += 8;
                return Double.NEGATIVE_INFINITY;
            }
        }
        while (at < s.length()) {
            char c = s.charAt(at);
            if (c >= '0' && c <= '9') {
                at++;
            } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                integral = false;
                at++;
            } else {
                break;
            }
        }
        String t = s.substring(start, at);
        if (t.isEmpty() || t.equals("-")) {
            throw error("expected a value");
        }
        if (integral) {
            try {
                return Long.parseLong(t);
            } catch (NumberFormatException big) {
                return new BigDecimal(t).doubleValue();
            }
        }
        return Double.parseDouble(t);
    }

    // ------------------------------------------------------------------ writer

    /** Compact JSON (Python's {@code separators=(",", ":")}); NaN written as Python writes it. */
    public static String write(Object v) {
        StringBuilder b = new StringBuilder();
        write(b, v);
        return b.toString();
    }

    @SuppressWarnings("unchecked")
    private static void write(StringBuilder b, Object v) {
        if (v == null) {
            b.append("null");
        } else if (v instanceof String) {
            quote(b, (String) v);
        } else if (v instanceof Boolean || v instanceof Long || v instanceof Integer) {
            b.append(v);
        } else if (v instanceof Number) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d)) {
                b.append("NaN");
            } else if (Double.isInfinite(d)) {
                b.append(d > 0 ? "Infinity" : "-Infinity");
            } else {
                b.append(d);
            }
        } else if (v instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<String, Object> e : ((Map<String, Object>) v).entrySet()) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                quote(b, e.getKey());
                b.append(':');
                write(b, e.getValue());
            }
            b.append('}');
        } else if (v instanceof List) {
            b.append('[');
            boolean first = true;
            for (Object x : (List<Object>) v) {
                if (!first) {
                    b.append(',');
                }
                first = false;
                write(b, x);
            }
            b.append(']');
        } else {
            quote(b, v.toString());
        }
    }

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20 || c > 0x7e) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        b.append('"');
    }

    // ------------------------------------------------------------------ access helpers

    /** {@code m.get(key)} as a map, or null. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> obj(Object m, String key) {
        Object v = m instanceof Map ? ((Map<String, Object>) m).get(key) : null;
        return v instanceof Map ? (Map<String, Object>) v : null;
    }

    /** {@code m.get(key)} as a list, or null. */
    @SuppressWarnings("unchecked")
    public static List<Object> list(Object m, String key) {
        Object v = m instanceof Map ? ((Map<String, Object>) m).get(key) : null;
        return v instanceof List ? (List<Object>) v : null;
    }

    /** {@code m.get(key)} as a string, or null. */
    @SuppressWarnings("unchecked")
    public static String str(Object m, String key) {
        Object v = m instanceof Map ? ((Map<String, Object>) m).get(key) : null;
        return v instanceof String ? (String) v : null;
    }

    /** A JSON number list as doubles. */
    public static double[] doubles(List<Object> xs) {
        double[] out = new double[xs.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ((Number) xs.get(i)).doubleValue();
        }
        return out;
    }
}
