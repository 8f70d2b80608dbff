package dev.edgesmith.core;

/**
 * Character classes of BERT's normaliser and pre-tokenizer as Hugging Face {@code tokenizers} applies
 * them. They come from {@link BertCharTable}, probed out of {@code tokenizers} itself, not from the
 * platform's Unicode data: the JVM, Android and browsers each know a newer Unicode than that library's
 * tables, and asking them would give other ids for characters added since.
 */
final class BertChars {
    private BertChars() {
    }

    static boolean in(int[] ranges, int cp) {
        int lo = 0;
        int hi = ranges.length / 2 - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            if (cp < ranges[2 * mid]) {
                hi = mid - 1;
            } else if (cp > ranges[2 * mid + 1]) {
                lo = mid + 1;
            } else {
                return true;
            }
        }
        return false;
    }

    /** Unicode White_Space (tab, newline, carriage return included): split on, and made a space by clean_text. */
    static boolean isWhitespace(int cp) {
        return in(BertCharTable.WHITESPACE, cp);
    }

    /** Dropped by clean_text: Cc, Cf, Co in the library's tables, not tab, newline or carriage return. */
    static boolean isControl(int cp) {
        return in(BertCharTable.CONTROL, cp);
    }

    /** Dropped by strip_accents after NFD: Mn in the library's tables. */
    static boolean isMark(int cp) {
        return in(BertCharTable.MARK, cp);
    }

    /** A word of its own for the pre-tokenizer: ASCII punctuation or P* in the library's tables. */
    static boolean isPunctuation(int cp) {
        return in(BertCharTable.PUNCTUATION, cp);
    }

    /** CJK Unified Ideographs and their extensions / compatibility blocks (spaced out by the normaliser). */
    static boolean isChinese(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F)
                || (cp >= 0x2B920 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF)
                || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }
}
