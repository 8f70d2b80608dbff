// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package android.widget;

public class TextView extends android.view.View {
 public TextView(android.content.Context context) { super(context); }
 public final void setText(CharSequence text) { throw new RuntimeException("stub"); }
 public final void setHint(CharSequence hint) { throw new RuntimeException("stub"); }
 public void setInputType(int type) { throw new RuntimeException("stub"); }
 public void setTextIsSelectable(boolean selectable) { throw new RuntimeException("stub"); }
 public void setAllCaps(boolean allCaps) { throw new RuntimeException("stub"); }
 public CharSequence getText() { throw new RuntimeException("stub"); }
}
