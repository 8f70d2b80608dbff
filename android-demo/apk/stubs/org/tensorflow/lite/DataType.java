// Compile-only stub (signatures of the real API); never packaged. See ../build-apk.sh.
package org.tensorflow.lite;

public enum DataType { FLOAT32, INT32, UINT8, INT64, STRING, BOOL, INT16, COMPLEX64, INT8, FLOAT16 }
