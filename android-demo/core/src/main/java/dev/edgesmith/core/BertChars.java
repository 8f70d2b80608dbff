package dev.edgesmith.core;

/** Character classes of BERT's normaliser and pre-tokenizer, as Hugging Face {@code tokenizers} defines them. */
final class BertChars {
    /**
     * Code points that {@code tokenizers} (its Unicode tables predate Unicode 10) treats as plain letters
     * although Unicode 14 makes them marks, punctuation or format characters: inclusive ranges, found
     * by running every code point through both tokenizers (tests/android, golden vectors).
     */
    private static final int[] PLAIN = {
        0x61D, 0x61D, 0x7FD, 0x7FD, 0x890, 0x891, 0x898, 0x89F, 0x8CA, 0x8E2, 0x9FD, 0x9FE, 0xA76, 0xA76, 0xAFA,
        0xAFF, 0xB55, 0xB55, 0xC04, 0xC04, 0xC3C, 0xC3C, 0xC77, 0xC77, 0xC84, 0xC84, 0xD00, 0xD00, 0xD3B, 0xD3C,
        0xD81, 0xD81, 0xEBA, 0xEBA, 0x180F, 0x180F, 0x1885, 0x1886, 0x1ABF, 0x1ACE, 0x1B7D, 0x1B7E, 0x1DF6, 0x1DFB,
        0x2E43, 0x2E4F, 0x2E52, 0x2E5D, 0xA82C, 0xA82C, 0xA8C5, 0xA8C5, 0xA8FF, 0xA8FF, 0xA9BD, 0xA9BD, 0x10D24,
        0x10D27, 0x10EAB, 0x10EAD, 0x10F46, 0x10F50, 0x10F55, 0x10F59, 0x10F82, 0x10F89, 0x11070, 0x11070, 0x11073,
        0x11074, 0x110C2, 0x110C2, 0x110CD, 0x110CD, 0x111CF, 0x111CF, 0x1123E, 0x1123E, 0x1133B, 0x1133B, 0x11438,
        0x1143F, 0x11442, 0x11444, 0x11446, 0x11446, 0x1144B, 0x1144F, 0x1145A, 0x1145B, 0x1145D, 0x1145E, 0x11660,
        0x1166C, 0x116B9, 0x116B9, 0x1182F, 0x11837, 0x11839, 0x1183B, 0x1193B, 0x1193C, 0x1193E, 0x1193E, 0x11943,
        0x11946, 0x119D4, 0x119D7, 0x119DA, 0x119DB, 0x119E0, 0x119E0, 0x119E2, 0x119E2, 0x11A01, 0x11A0A, 0x11A33,
        0x11A38, 0x11A3B, 0x11A47, 0x11A51, 0x11A56, 0x11A59, 0x11A5B, 0x11A8A, 0x11A96, 0x11A98, 0x11A9C, 0x11A9E,
        0x11AA2, 0x11C30, 0x11C36, 0x11C38, 0x11C3D, 0x11C3F, 0x11C3F, 0x11C41, 0x11C45, 0x11C70, 0x11C71, 0x11C92,
        0x11CA7, 0x11CAA, 0x11CB0, 0x11CB2, 0x11CB3, 0x11CB5, 0x11CB6, 0x11D31, 0x11D36, 0x11D3A, 0x11D3A, 0x11D3C,
        0x11D3D, 0x11D3F, 0x11D45, 0x11D47, 0x11D47, 0x11D90, 0x11D91, 0x11D95, 0x11D95, 0x11D97, 0x11D97, 0x11EF3,
        0x11EF4, 0x11EF7, 0x11EF8, 0x11FFF, 0x11FFF, 0x12FF1, 0x12FF2, 0x13430, 0x13438, 0x16E97, 0x16E9A, 0x16F4F,
        0x16F4F, 0x16FE2, 0x16FE2, 0x16FE4, 0x16FE4, 0x1CF00, 0x1CF2D, 0x1CF30, 0x1CF46, 0x1E000, 0x1E006, 0x1E008,
        0x1E018, 0x1E01B, 0x1E021, 0x1E023, 0x1E024, 0x1E026, 0x1E02A, 0x1E130, 0x1E136, 0x1E2AE, 0x1E2AE, 0x1E2EC,
        0x1E2EF, 0x1E944, 0x1E94A, 0x1E95E, 0x1E95F
    };
    /** Punctuation to {@code tokenizers}, no longer P* in current Unicode (U+166D, U+111C9). */
    private static final int[] OLD_PUNCTUATION = {0x166D, 0x111C9};

    private BertChars() {
    }

    private static boolean plain(int cp) {
        int lo = 0;
        int hi = PLAIN.length / 2 - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (cp < PLAIN[2 * mid]) {
                hi = mid - 1;
            } else if (cp > PLAIN[2 * mid + 1]) {
                lo = mid + 1;
            } else {
                return true;
            }
        }
        return false;
    }

    /** Category Mn as {@code tokenizers} knows it: stripped with accents. */
    static boolean isMark(int cp) {
        return Character.getType(cp) == Character.NON_SPACING_MARK && !plain(cp) && cp != OLD_PUNCTUATION[1];
    }

    /** Unicode White_Space (Rust's {@code char::is_whitespace}), tab, newline and carriage return included. */
    static boolean isWhitespace(int cp) {
        switch (cp) {
            case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d: case 0x20: case 0x85: case 0xa0:
            case 0x1680: case 0x2028: case 0x2029: case 0x202f: case 0x205f: case 0x3000:
                return true;
            default:
                return cp >= 0x2000 && cp <= 0x200a;
        }
    }

    /** Dropped by clean_text: categories Cc, Cf, Co, except tab, newline and carriage return (not Cn). */
    static boolean isControl(int cp) {
        if (cp == '\t' || cp == '\n' || cp == '\r') {
            return false;
        }
        int t = Character.getType(cp);
        return !plain(cp) && (t == Character.CONTROL || t == Character.FORMAT || t == Character.PRIVATE_USE);
    }

    /** ASCII punctuation or a Unicode P* category. */
    static boolean isPunctuation(int cp) {
        if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
            return true;
        }
        if (cp == OLD_PUNCTUATION[0] || cp == OLD_PUNCTUATION[1]) {
            return true;
        }
        if (plain(cp)) {
            return false;
        }
        switch (Character.getType(cp)) {
            case Character.CONNECTOR_PUNCTUATION: case Character.DASH_PUNCTUATION: case Character.START_PUNCTUATION:
            case Character.END_PUNCTUATION: case Character.INITIAL_QUOTE_PUNCTUATION:
            case Character.FINAL_QUOTE_PUNCTUATION: case Character.OTHER_PUNCTUATION:
                return true;
            default:
                return false;
        }
    }

    /** CJK Unified Ideographs and their extensions / compatibility blocks (spaced out by the normaliser). */
    static boolean isChinese(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F)
                || (cp >= 0x2B920 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF)
                || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }
}
