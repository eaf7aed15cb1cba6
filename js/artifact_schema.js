// docs/artifact.schema.json as a module (browsers cannot import JSON everywhere yet).
// Generated: python3 -m webtensor.schema --js > js/artifact_schema.js; a test checks it is current.
export default {
 "$schema": "https://json-schema.org/draft/2020-12/schema",
 "$id": "https://webtensor.dev/schemas/artifact-manifest-2.json",
 "title": "webtensor artifact manifest, format versions 1 and 2",
 "description": "manifest.json of a webtensor artifact (docs/artifact.md). Both loaders (python/artifact.py, js/artifact.js) check a manifest against this file before using any field; they implement the keywords used here and no others (python/schema.py, js/schema.js). Patterns use ASCII classes only and are anchored with ^ and $.",
 "type": "object",
 "required": [
  "format",
  "format_version",
  "files",
  "variables",
  "signatures"
 ],
 "additionalProperties": false,
 "properties": {
  "format": {
   "const": "webtensor-artifact"
  },
  "format_version": {
   "description": "1, or 2 where a signature has a 'batch' section (docs/artifact.md, 'Symbolic batch'); loaders read both.",
   "enum": [
    1,
    2
   ]
  },
  "webtensor_version": {
   "type": "string",
   "pattern": "^[0-9A-Za-z.+-]{1,64}$"
  },
  "files": {
   "description": "Every file except manifest.json: a plain relative path ('/'-separated; each segment starts with a letter, digit, '_' or '-', so no '.', '..', absolute path, scheme, '%' or backslash) -> its size and SHA-256.",
   "type": "object",
   "required": [
    "weights.safetensors"
   ],
   "maxProperties": 10000,
   "propertyNames": {
    "$ref": "#/$defs/file_name"
   },
   "properties": {
    "weights.safetensors": {
     "$ref": "#/$defs/file_entry"
    },
    "module.wasm": {
     "$ref": "#/$defs/module_entry"
    },
    "module_relaxed.wasm": {
     "description": "Optional: module.wasm's drivers at the same addresses, using relaxed SIMD (fused multiply-adds); loaders run it where the engine has relaxed SIMD, else module.wasm (docs/artifact.md).",
     "$ref": "#/$defs/module_entry"
    },
    "module_threads.wasm": {
     "description": "Optional: module.wasm's drivers on a shared memory, large kernels split over threads (exports worker, stop, threads_setup, optionally wake); loaders run it when asked for more than one thread (docs/artifact.md, Threads).",
     "$ref": "#/$defs/module_entry"
    },
    "module_relaxed_threads.wasm": {
     "description": "Optional: module_threads.wasm with relaxed SIMD, as module_relaxed.wasm is to module.wasm.",
     "$ref": "#/$defs/module_entry"
    }
   },
   "additionalProperties": {
    "$ref": "#/$defs/wgsl_entry"
   }
  },
  "variables": {
   "type": "array",
   "maxItems": 100000,
   "items": {
    "type": "object",
    "required": [
     "name",
     "dtype",
     "shape"
    ],
    "additionalProperties": false,
    "properties": {
     "name": {
      "$ref": "#/$defs/name"
     },
     "dtype": {
      "$ref": "#/$defs/dtype"
     },
     "shape": {
      "$ref": "#/$defs/shape"
     },
     "trainable": {
      "type": "boolean"
     },
     "storage": {
      "$ref": "#/$defs/storage"
     }
    }
   }
  },
  "signatures": {
   "type": "object",
   "minProperties": 1,
   "maxProperties": 256,
   "propertyNames": {
    "$ref": "#/$defs/name"
   },
   "additionalProperties": {
    "$ref": "#/$defs/signature"
   }
  }
 },
 "$defs": {
  "file_entry": {
   "description": "A listed file: its size in bytes (weights at most 4 GiB, the WebAssembly memory's size) and SHA-256 (lowercase hex).",
   "type": "object",
   "required": [
    "bytes",
    "sha256"
   ],
   "additionalProperties": false,
   "properties": {
    "bytes": {
     "type": "integer",
     "minimum": 0,
     "maximum": 4294967296
    },
    "sha256": {
     "type": "string",
     "pattern": "^[0-9a-f]{64}$"
    }
   }
  },
  "module_entry": {
   "description": "module.wasm and module_relaxed.wasm: at most 1 GiB (V8's limit on a module).",
   "$ref": "#/$defs/file_entry",
   "properties": {
    "bytes": {
     "maximum": 1073741824
    }
   }
  },
  "wgsl_entry": {
   "description": "Any other file (WGSL source): at most 64 MiB.",
   "$ref": "#/$defs/file_entry",
   "properties": {
    "bytes": {
     "maximum": 67108864
    }
   }
  },
  "file_name": {
   "type": "string",
   "maxLength": 255,
   "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]*(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$"
  },
  "name": {
   "description": "A variable, signature, input or output name: printable ASCII, no leading '__' (no JavaScript prototype keys).",
   "type": "string",
   "maxLength": 256,
   "pattern": "^(?!__)[ -~]+$"
  },
  "dtype": {
   "enum": [
    "float32",
    "int32",
    "bool"
   ]
  },
  "storage": {
   "description": "How weights.safetensors stores a variable when not in its own dtype (compact artifacts, docs/artifact.md 'Compact weights'): 'float16' (a float32 variable stored as F16, widened exactly at load) or 'int8' (an int32 variable of ceil(prod(shape) / 4) words holding the int8 values of the logical shape 'shape', four to a little-endian word; stored as an I8 tensor of that shape; 'scales' names the float32 variable of its per-channel scales).",
   "type": "object",
   "required": [
    "dtype"
   ],
   "additionalProperties": false,
   "properties": {
    "dtype": {
     "enum": [
      "float16",
      "int8"
     ]
    },
    "shape": {
     "$ref": "#/$defs/shape"
    },
    "scales": {
     "$ref": "#/$defs/name"
    }
   }
  },
  "shape": {
   "type": "array",
   "maxItems": 32,
   "items": {
    "type": "integer",
    "minimum": 0,
    "maximum": 2147483647
   }
  },
  "address": {
   "type": "integer",
   "minimum": 0,
   "maximum": 4294967296
  },
  "index": {
   "type": "integer",
   "minimum": 0,
   "maximum": 99999
  },
  "tensor_spec": {
   "type": "object",
   "required": [
    "name",
    "dtype",
    "shape"
   ],
   "additionalProperties": false,
   "properties": {
    "name": {
     "$ref": "#/$defs/name"
    },
    "dtype": {
     "$ref": "#/$defs/dtype"
    },
    "shape": {
     "$ref": "#/$defs/shape"
    }
   }
  },
  "batch": {
   "description": "Format version 2: axis 0 of every input and output of the signature is the batch, of any size from 1 to 'maximum' (if given); the kernels are compiled for 'chunk' rows (the shapes' axis 0), and loaders run ceil(n / chunk) chunks, padding the last and slicing its outputs. Written only for signatures whose rows the exporter proved independent.",
   "type": "object",
   "required": [
    "chunk"
   ],
   "additionalProperties": false,
   "properties": {
    "chunk": {
     "type": "integer",
     "minimum": 1,
     "maximum": 2147483647
    },
    "maximum": {
     "type": "integer",
     "minimum": 1,
     "maximum": 2147483647
    },
    "rows_input": {
     "description": "Optional: a train step that takes any batch from 1 to 'maximum' (at most 'chunk'): the index of its input (int32, shape []) that loaders set to the number of real rows n, padding the other inputs to 'chunk' rows; its loss is over the first n rows only, and its outputs are returned whole (docs/artifact.md, 'Symbolic batch: train steps').",
     "type": "integer",
     "minimum": 0,
     "maximum": 1023
    }
   }
  },
  "length": {
   "description": "Optional: a symbolic length (a sequence's steps; docs/artifact.md 'Symbolic length'). 'inputs' and 'outputs' give, per input and output in order, the axis that is the length (-1: none); the shapes hold 'maximum' there. Loaders take any length from 1 to 'maximum' (the same in every input that has one), pad the inputs to 'maximum' with zero rows, run the loops marked 'length' for that many steps and cut the outputs. Written only for signatures whose steps the exporter proved independent.",
   "type": "object",
   "required": [
    "maximum",
    "inputs",
    "outputs"
   ],
   "additionalProperties": false,
   "properties": {
    "maximum": {
     "type": "integer",
     "minimum": 1,
     "maximum": 1048576
    },
    "inputs": {
     "type": "array",
     "maxItems": 1024,
     "items": {
      "type": "integer",
      "minimum": -1,
      "maximum": 31
     }
    },
    "outputs": {
     "type": "array",
     "maxItems": 1024,
     "items": {
      "type": "integer",
      "minimum": -1,
      "maximum": 31
     }
    }
   }
  },
  "signature": {
   "type": "object",
   "required": [
    "inputs",
    "outputs"
   ],
   "additionalProperties": false,
   "properties": {
    "inputs": {
     "type": "array",
     "maxItems": 1024,
     "items": {
      "$ref": "#/$defs/tensor_spec"
     }
    },
    "outputs": {
     "type": "array",
     "maxItems": 1024,
     "items": {
      "$ref": "#/$defs/tensor_spec"
     }
    },
    "reads": {
     "type": "array",
     "maxItems": 100000,
     "items": {
      "$ref": "#/$defs/index"
     }
    },
    "writes": {
     "type": "array",
     "maxItems": 100000,
     "items": {
      "$ref": "#/$defs/index"
     }
    },
    "batch": {
     "$ref": "#/$defs/batch"
    },
    "length": {
     "$ref": "#/$defs/length"
    },
    "wasm": {
     "$ref": "#/$defs/wasm"
    },
    "webgpu": {
     "$ref": "#/$defs/webgpu"
    },
    "control": {
     "$ref": "#/$defs/control"
    }
   }
  },
  "control": {
   "description": "Optional: the signature holds control flow (cond, while_loop, scan; docs/artifact.md 'Control flow'). Its code is in its pieces (straight-line parts, each with the 'wasm'/'webgpu' sections of a signature), which the loader runs host-side as its programs say; the signature has no 'wasm'/'webgpu' section of its own. Tensors that cross pieces are the numbered 'values'.",
   "type": "object",
   "required": [
    "values",
    "pieces",
    "programs"
   ],
   "additionalProperties": false,
   "properties": {
    "values": {
     "type": "array",
     "maxItems": 100000,
     "items": {
      "$ref": "#/$defs/value_spec"
     }
    },
    "pieces": {
     "type": "array",
     "maxItems": 10000,
     "items": {
      "$ref": "#/$defs/piece"
     }
    },
    "programs": {
     "type": "array",
     "minItems": 1,
     "maxItems": 10000,
     "items": {
      "$ref": "#/$defs/program"
     }
    },
    "updates": {
     "description": "[variable index, value id] pairs: variables assigned after programs[0] returns, in order.",
     "type": "array",
     "maxItems": 100000,
     "items": {
      "type": "array",
      "minItems": 2,
      "maxItems": 2,
      "items": {
       "$ref": "#/$defs/value_id"
      }
     }
    }
   }
  },
  "value_id": {
   "type": "integer",
   "minimum": 0,
   "maximum": 99999
  },
  "value_ids": {
   "type": "array",
   "maxItems": 1024,
   "items": {
    "$ref": "#/$defs/value_id"
   }
  },
  "program_index": {
   "description": "An index into 'programs' (never 0: the signature's own).",
   "type": "integer",
   "minimum": 1,
   "maximum": 9999
  },
  "value_spec": {
   "type": "object",
   "required": [
    "dtype",
    "shape"
   ],
   "additionalProperties": false,
   "properties": {
    "dtype": {
     "$ref": "#/$defs/dtype"
    },
    "shape": {
     "$ref": "#/$defs/shape"
    }
   }
  },
  "piece": {
   "description": "A straight-line part of a signature with control flow: the value ids it reads and defines, and its code (as a signature's).",
   "type": "object",
   "required": [
    "inputs",
    "outputs"
   ],
   "additionalProperties": false,
   "properties": {
    "inputs": {
     "$ref": "#/$defs/value_ids"
    },
    "outputs": {
     "$ref": "#/$defs/value_ids"
    },
    "reads": {
     "type": "array",
     "maxItems": 100000,
     "items": {
      "$ref": "#/$defs/index"
     }
    },
    "writes": {
     "type": "array",
     "maxItems": 100000,
     "items": {
      "$ref": "#/$defs/index"
     }
    },
    "wasm": {
     "$ref": "#/$defs/wasm"
    },
    "webgpu": {
     "$ref": "#/$defs/webgpu"
    }
   }
  },
  "program": {
   "description": "Value ids bound on entry, steps run in order, value ids returned; programs[0] is the signature's (its inputs and outputs are the signature's).",
   "type": "object",
   "required": [
    "inputs",
    "steps",
    "outputs"
   ],
   "additionalProperties": false,
   "properties": {
    "inputs": {
     "$ref": "#/$defs/value_ids"
    },
    "steps": {
     "type": "array",
     "maxItems": 10000,
     "items": {
      "$ref": "#/$defs/step"
     }
    },
    "outputs": {
     "$ref": "#/$defs/value_ids"
    }
   }
  },
  "step": {
   "description": "One of: {piece: k} runs piece k; cond runs branches[1] when pred is true, else branches[0]; while (scan is a while with sequences sliced along their first axis).",
   "type": "object",
   "minProperties": 1,
   "maxProperties": 1,
   "additionalProperties": false,
   "properties": {
    "piece": {
     "$ref": "#/$defs/index"
    },
    "cond": {
     "type": "object",
     "required": [
      "pred",
      "operands",
      "branches",
      "outputs"
     ],
     "additionalProperties": false,
     "properties": {
      "pred": {
       "$ref": "#/$defs/value_id"
      },
      "operands": {
       "$ref": "#/$defs/value_ids"
      },
      "branches": {
       "type": "array",
       "minItems": 2,
       "maxItems": 2,
       "items": {
        "$ref": "#/$defs/program_index"
       }
      },
      "outputs": {
       "$ref": "#/$defs/value_ids"
      }
     }
    },
    "while": {
     "type": "object",
     "required": [
      "vars",
      "seqs",
      "operands",
      "body",
      "reverse",
      "outputs"
     ],
     "additionalProperties": false,
     "properties": {
      "vars": {
       "$ref": "#/$defs/value_ids"
      },
      "seqs": {
       "$ref": "#/$defs/value_ids"
      },
      "operands": {
       "$ref": "#/$defs/value_ids"
      },
      "cond": {
       "description": "The condition's program (absent: always true; maximum_iterations then bounds the loop).",
       "$ref": "#/$defs/program_index"
      },
      "body": {
       "$ref": "#/$defs/program_index"
      },
      "maximum_iterations": {
       "description": "At most this many iterations (absent: unbounded; loaders cap every run's iterations, docs/artifact.md).",
       "type": "integer",
       "minimum": 0,
       "maximum": 2147483647
      },
      "reverse": {
       "type": "boolean"
      },
      "length": {
       "description": "The loop steps over the signature's symbolic length: it runs at most that many iterations (its maximum_iterations is the length's maximum), reads row i (reverse: length - 1 - i) of its sequences and stacks iteration i's rows at row i (reverse: length - 1 - i).",
       "const": true
      },
      "outputs": {
       "$ref": "#/$defs/value_ids"
      }
     }
    }
   }
  },
  "wasm": {
   "type": "object",
   "required": [
    "driver",
    "memory_bytes",
    "inputs",
    "outputs"
   ],
   "additionalProperties": false,
   "properties": {
    "driver": {
     "type": "string",
     "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"
    },
    "rows_driver": {
     "description": "Optional, with a 'batch' section: the exported function (i32) -> () that runs the signature on the first rows (1 <= rows <= chunk) of its inputs, writing only those rows of its outputs (docs/artifact.md, 'Run-time rows').",
     "type": "string",
     "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"
    },
    "memory_bytes": {
     "type": "integer",
     "minimum": 0,
     "maximum": 4294967296
    },
    "inputs": {
     "type": "array",
     "maxItems": 1024,
     "items": {
      "$ref": "#/$defs/address"
     }
    },
    "outputs": {
     "type": "array",
     "maxItems": 1024,
     "items": {
      "$ref": "#/$defs/address"
     }
    },
    "variables": {
     "description": "variable index (a decimal string without leading zeros) -> byte address",
     "type": "object",
     "maxProperties": 100000,
     "propertyNames": {
      "pattern": "^(0|[1-9][0-9]{0,4})$"
     },
     "additionalProperties": {
      "$ref": "#/$defs/address"
     }
    },
    "threads": {
     "description": "Optional, with module_threads.wasm: threads 1.. of the threaded module use stride bytes of workspace each from byte scratch on (the memory then needs scratch + (threads - 1) * stride bytes).",
     "type": "object",
     "required": [
      "scratch",
      "stride"
     ],
     "additionalProperties": false,
     "properties": {
      "scratch": {
       "$ref": "#/$defs/address"
      },
      "stride": {
       "type": "integer",
       "minimum": 0,
       "maximum": 4294967296
      },
      "rounds": {
       "description": "Optional: how many kernels the signature's driver splits over the threads (0: it runs on the calling thread alone, and a loader need not wake the threads for it).",
       "type": "integer",
       "minimum": 0
      }
     }
    },
    "constants": {
     "description": "Optional (large constants, stored once): byte address (a decimal string without leading zeros) -> the weights.safetensors tensor (float32, int32 or bool) whose storage bytes the loader copies there before any driver runs.",
     "type": "object",
     "maxProperties": 100000,
     "propertyNames": {
      "pattern": "^(0|[1-9][0-9]{0,9})$"
     },
     "additionalProperties": {
      "$ref": "#/$defs/name"
     }
    }
   }
  },
  "webgpu": {
   "type": "object",
   "required": [
    "buffers",
    "kernels"
   ],
   "additionalProperties": false,
   "properties": {
    "buffers": {
     "type": "array",
     "maxItems": 100000,
     "items": {
      "type": "object",
      "required": [
       "bytes",
       "role"
      ],
      "additionalProperties": false,
      "properties": {
       "bytes": {
        "type": "integer",
        "minimum": 0,
        "maximum": 4294967296
       },
       "role": {
        "enum": [
         "input",
         "output",
         "variable",
         "temp",
         "const"
        ]
       },
       "index": {
        "$ref": "#/$defs/index"
       },
       "data": {
        "$ref": "#/$defs/name"
       }
      }
     }
    },
    "kernels": {
     "type": "array",
     "maxItems": 100000,
     "items": {
      "type": "object",
      "required": [
       "wgsl",
       "entry_point",
       "bindings",
       "dispatch"
      ],
      "additionalProperties": false,
      "properties": {
       "wgsl": {
        "$ref": "#/$defs/file_name"
       },
       "entry_point": {
        "type": "string",
        "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,127}$"
       },
       "bindings": {
        "type": "array",
        "maxItems": 64,
        "items": {
         "$ref": "#/$defs/index"
        }
       },
       "access": {
        "type": "array",
        "maxItems": 64,
        "items": {
         "enum": [
          "read",
          "read_write"
         ]
        }
       },
       "dispatch": {
        "type": "array",
        "minItems": 1,
        "maxItems": 3,
        "items": {
         "type": "integer",
         "minimum": 0,
         "maximum": 65535
        }
       },
       "rows": {
        "description": "Optional, with a 'batch' section and 'access': the kernel takes the number of rows to compute at run time from a uniform (u32) at @binding(len(bindings)), and a run of rows (1 <= rows <= chunk) dispatches ceil(rows * rows[0] / rows[1]) * rows[2] workgroups, folded as 'dispatch' folds its own (docs/artifact.md, 'Run-time rows: WebGPU').",
        "type": "array",
        "minItems": 3,
        "maxItems": 3,
        "items": {
         "type": "integer",
         "minimum": 1,
         "maximum": 2147483647
        }
       }
      }
     }
    },
    "required_limits": {
     "type": "object",
     "maxProperties": 64,
     "propertyNames": {
      "pattern": "^[a-z][A-Za-z0-9]{0,63}$"
     },
     "additionalProperties": {
      "type": "integer",
      "minimum": 0,
      "maximum": 9007199254740991
     }
    }
   }
  }
 }
};
