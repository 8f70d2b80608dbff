package dev.edgesmith.demo;

import android.content.Context;
import android.graphics.Bitmap;
import android.graphics.Canvas;
import android.graphics.Color;
import android.graphics.Paint;
import android.graphics.Path;
import android.view.MotionEvent;
import android.view.View;

/** A black pad to draw on in white (like the digits / Fashion-MNIST training images), or to show a picked image. */
final class DrawView extends View {
    private final Paint paint = new Paint(Paint.ANTI_ALIAS_FLAG);
    private Bitmap bitmap;
    private Canvas canvas;
    private final Path path = new Path();

    DrawView(Context context) {
        super(context);
        paint.setColor(Color.WHITE);
        paint.setStyle(Paint.Style.STROKE);
        paint.setStrokeCap(Paint.Cap.ROUND);
        paint.setStrokeJoin(Paint.Join.ROUND);
    }

    @Override
    protected void onSizeChanged(int w, int h, int oldw, int oldh) {
        bitmap = Bitmap.createBitmap(Math.max(w, 1), Math.max(h, 1), Bitmap.Config.ARGB_8888);
        canvas = new Canvas(bitmap);
        paint.setStrokeWidth(w / 10f);
        clear();
    }

    void clear() {
        if (canvas != null) {
            canvas.drawColor(Color.BLACK);
            invalidate();
        }
    }

    /** Shows an image (gallery or camera), scaled to the pad. */
    void show(Bitmap image) {
        if (canvas != null) {
            canvas.drawBitmap(Bitmap.createScaledBitmap(image, bitmap.getWidth(), bitmap.getHeight(), true), 0, 0, null);
            invalidate();
        }
    }

    /** The pad's pixels. */
    Bitmap snapshot() {
        return bitmap.copy(Bitmap.Config.ARGB_8888, false);
    }

    @Override
    protected void onDraw(Canvas c) {
        c.drawBitmap(bitmap, 0, 0, null);
    }

    @Override
    public boolean onTouchEvent(MotionEvent e) {
        switch (e.getAction()) {
            case MotionEvent.ACTION_DOWN:
                path.reset();
                path.moveTo(e.getX(), e.getY());
                break;
            case MotionEvent.ACTION_MOVE:
                path.lineTo(e.getX(), e.getY());
                canvas.drawPath(path, paint);
                break;
            case MotionEvent.ACTION_UP:
                performClick();
                break;
            default:
                return false;
        }
        invalidate();
        return true;
    }

    @Override
    public boolean performClick() {
        return super.performClick();
    }
}
