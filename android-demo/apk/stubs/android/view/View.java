// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.view;

public class View {
 public static final int VISIBLE = 0;
 public static final int GONE = 8;
 public interface OnClickListener { void onClick(View v); }
 public View(android.content.Context context) { throw new RuntimeException("stub"); }
 protected void onSizeChanged(int w, int h, int oldw, int oldh) { throw new RuntimeException("stub"); }
 protected void onDraw(android.graphics.Canvas canvas) { throw new RuntimeException("stub"); }
 public boolean onTouchEvent(MotionEvent event) { throw new RuntimeException("stub"); }
 public boolean performClick() { throw new RuntimeException("stub"); }
 public void invalidate() { throw new RuntimeException("stub"); }
 public void setVisibility(int visibility) { throw new RuntimeException("stub"); }
 public void setPadding(int left, int top, int right, int bottom) { throw new RuntimeException("stub"); }
 public void setOnClickListener(OnClickListener l) { throw new RuntimeException("stub"); }
}
