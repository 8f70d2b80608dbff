// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.view;

public final class MotionEvent {
 public static final int ACTION_DOWN = 0;
 public static final int ACTION_UP = 1;
 public static final int ACTION_MOVE = 2;
 public final int getAction() { throw new RuntimeException("stub"); }
 public final float getX() { throw new RuntimeException("stub"); }
 public final float getY() { throw new RuntimeException("stub"); }
}
