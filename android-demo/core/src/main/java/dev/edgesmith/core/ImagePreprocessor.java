package dev.edgesmith.core;

import java.util.List;
import java.util.Map;

/**
 * Raw images to the model's input, exactly as {@code edgesmith.bundle.loader.ImageInputs}:
 * uint8 pixels divided by {@code 1 / uint8_scale} (255) in float32, or floats in [0, 1] as they are;
 * then {@code (x - mean[c]) / std[c]} in float32, in the manifest's layout (NCHW or NHWC).
 */
public final class ImagePreprocessor {
    private final int channels;
    private final int height;
    private final int width;
    private final String layout;
    private final float divisor;
    private final float[] mean;
    private final float[] std;

    /** From the manifest's {@code preprocessing} block (kind {@code image}). */
    public ImagePreprocessor(Map<String, Object> spec) {
        channels = ((Number) spec.get("channels")).intValue();
        List<Object> size = Json.list(spec, "size");
        height = ((Number) size.get(0)).intValue();
        width = ((Number) size.get(1)).intValue();
        layout = spec.get("layout") == null ? "NCHW" : (String) spec.get("layout");
        double scale = spec.get("uint8_scale") == null ? 1.0 / 255 : ((Number) spec.get("uint8_scale")).doubleValue();
        divisor = (float) (1 / scale);
        mean = floats(Json.list(spec, "mean"));
        std = floats(Json.list(spec, "std"));
        if (mean.length != channels || std.length != channels) {
            throw new BundleException("preprocessing: mean / std have " + mean.length + " / " + std.length
                    + " values for " + channels + " channel(s); rebuild the bundle");
        }
    }

    private static float[] floats(List<Object> xs) {
        float[] out = new float[xs.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) ((Number) xs.get(i)).doubleValue();
        }
        return out;
    }

    public int channels() {
        return channels;
    }

    public int height() {
        return height;
    }

    public int width() {
        return width;
    }

    /** {@code NCHW} or {@code NHWC}: the layout of {@link #normalize}'s result. */
    public String layout() {
        return layout;
    }

    /** Values per image: channels x height x width. */
    public int size() {
        return channels * height * width;
    }

    /**
     * One uint8 image (values 0-255) to float32 CHW in [0, 1].
     *
     * @param channelsLast true for HWC order (an Android bitmap's), false for CHW
     */
    public float[] unitFromUint8(int[] pixels, boolean channelsLast) {
        checkSize(pixels.length);
        float[] out = new float[size()];
        int hw = height * width;
        for (int c = 0; c < channels; c++) {
            for (int i = 0; i < hw; i++) {
                int v = pixels[channelsLast ? i * channels + c : c * hw + i];
                if (v < 0 || v > 255) {
                    throw new BundleException("uint8 pixel value " + v + " outside 0-255");
                }
                out[c * hw + i] = (float) v / divisor;
            }
        }
        return out;
    }

    /** One float image in [0, 1] to CHW (copied); refused outside [-0.01, 1.01] as the Python side does. */
    public float[] unitFromFloat(float[] pixels, boolean channelsLast) {
        checkSize(pixels.length);
        float lo = Float.POSITIVE_INFINITY;
        float hi = Float.NEGATIVE_INFINITY;
        for (float v : pixels) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }
        if (pixels.length > 0 && (lo < -0.01 || hi > 1.01)) {
            throw new BundleException("float images must be in [0, 1], these span [" + lo + ", " + hi
                    + "]; divide by 255 or pass uint8");
        }
        float[] out = new float[size()];
        int hw = height * width;
        for (int c = 0; c < channels; c++) {
            for (int i = 0; i < hw; i++) {
                out[c * hw + i] = pixels[channelsLast ? i * channels + c : c * hw + i];
            }
        }
        return out;
    }

    private void checkSize(int n) {
        if (n != size()) {
            throw new BundleException("an image of " + n + " values does not fit this bundle's " + channels + "x"
                    + height + "x" + width + " input; resize it first");
        }
    }

    /** CHW pixels in [0, 1] to the model's input for one image, in the manifest's layout. */
    public float[] normalize(float[] unitChw) {
        float[] out = new float[size()];
        int hw = height * width;
        boolean nhwc = "NHWC".equals(layout);
        for (int c = 0; c < channels; c++) {
            for (int i = 0; i < hw; i++) {
                float v = (unitChw[c * hw + i] - mean[c]) / std[c];
                out[nhwc ? i * channels + c : c * hw + i] = v;
            }
        }
        return out;
    }

    /** Images' model inputs side by side: the flat {@code (N, ...)} tensor a runtime takes. */
    public static float[] batch(List<float[]> images) {
        int n = images.isEmpty() ? 0 : images.get(0).length;
        float[] out = new float[n * images.size()];
        for (int i = 0; i < images.size(); i++) {
            System.arraycopy(images.get(i), 0, out, i * n, n);
        }
        return out;
    }

    /**
     * ARGB pixels (Android's {@code Bitmap.getPixels}) to uint8 HWC: RGB for 3 channels, or Pillow's
     * greyscale for 1 ({@code (R*19595 + G*38470 + B*7471 + 0x8000) >> 16}, as {@code convert("L")}).
     */
    public static int[] argbToUint8(int[] argb, int channels) {
        int[] out = new int[argb.length * channels];
        for (int i = 0; i < argb.length; i++) {
            int r = (argb[i] >> 16) & 0xff;
            int g = (argb[i] >> 8) & 0xff;
            int b = argb[i] & 0xff;
            if (channels == 1) {
                out[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
            } else {
                out[i * 3] = r;
                out[i * 3 + 1] = g;
                out[i * 3 + 2] = b;
            }
        }
        return out;
    }
}
