//! A minimal protobuf encoder for the part of `onnx.proto` an exported model needs.
//!
//! Protobuf's wire format is a sequence of fields, each a key (`field_number << 3 | wire_type`,
//! as a varint) followed by the value: wire type 0 is a varint, 2 a length-delimited byte
//! string (strings, bytes, nested messages, packed repeated scalars), 5 a little-endian 32-bit
//! value (floats). Field numbers below are those of the public `onnx/onnx.proto` (a proto2
//! file). In proto2 a `repeated int64` is *not* packed unless the field says `[packed = true]`:
//! `TensorProto.dims` and `AttributeProto.ints` are written unpacked (one key per element),
//! as protoc would; only the data fields marked packed (`float_data`, `int64_data`) would be
//! packed, and this encoder stores tensor values in `raw_data` instead.
//!
//! Every field that is set is written, in field-number order of the struct, so the same model
//! always serialises to the same bytes.

/// Append `v` as a base-128 varint (7 bits per byte, least significant group first, high bit
/// set on every byte but the last).
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

const VARINT: u8 = 0;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A message being written.
#[derive(Default, Debug, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn key(&mut self, field: u32, wire: u8) {
        put_varint(&mut self.buf, (u64::from(field) << 3) | u64::from(wire));
    }

    /// An `int64` (or `int32`: protobuf sign-extends a negative int32 to 64 bits, so it takes
    /// ten bytes either way).
    pub fn int64(&mut self, field: u32, v: i64) {
        self.key(field, VARINT);
        put_varint(&mut self.buf, v as u64);
    }

    pub fn float(&mut self, field: u32, v: f32) {
        self.key(field, FIXED32);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, LEN);
        put_varint(&mut self.buf, v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    pub fn string(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    /// A string field that proto2 treats as optional: written only when non-empty.
    pub fn opt_string(&mut self, field: u32, v: &str) {
        if !v.is_empty() {
            self.string(field, v);
        }
    }

    pub fn message(&mut self, field: u32, m: &impl Encode) {
        let inner = m.to_bytes();
        self.bytes(field, &inner);
    }

    /// A repeated int64 written unpacked: one key per element (proto2's default).
    pub fn int64s_unpacked(&mut self, field: u32, vs: &[i64]) {
        for &v in vs {
            self.int64(field, v);
        }
    }

    /// A repeated int64 written packed: one key, the length, then the varints back to back.
    pub fn int64s_packed(&mut self, field: u32, vs: &[i64]) {
        let mut inner = Vec::new();
        for &v in vs {
            put_varint(&mut inner, v as u64);
        }
        self.bytes(field, &inner);
    }
}

pub trait Encode {
    fn encode(&self, w: &mut Writer);
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        self.encode(&mut w);
        w.buf
    }
}

/// `TensorProto.DataType` values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    Float = 1,
    Int64 = 7,
}

impl DataType {
    /// numpy's name for the type.
    pub fn numpy(self) -> &'static str {
        match self {
            DataType::Float => "float32",
            DataType::Int64 => "int64",
        }
    }
}

/// `OperatorSetIdProto`: domain = 1, version = 2. The empty domain is the default ONNX set.
#[derive(Clone, Debug)]
pub struct OpsetId {
    pub domain: String,
    pub version: i64,
}

impl Encode for OpsetId {
    fn encode(&self, w: &mut Writer) {
        w.opt_string(1, &self.domain);
        w.int64(2, self.version);
    }
}

/// `StringStringEntryProto`: key = 1, value = 2.
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub value: String,
}

impl Encode for Entry {
    fn encode(&self, w: &mut Writer) {
        w.string(1, &self.key);
        w.string(2, &self.value);
    }
}

/// `TensorProto` with its values in `raw_data` (little-endian): dims = 1 (repeated int64,
/// unpacked), data_type = 2, name = 8, raw_data = 9.
#[derive(Clone, Debug)]
pub struct TensorP {
    pub name: String,
    pub dims: Vec<i64>,
    pub data_type: DataType,
    pub raw_data: Vec<u8>,
}

impl TensorP {
    pub fn f32(name: impl Into<String>, dims: &[usize], values: &[f32]) -> TensorP {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "tensor shape and data disagree");
        TensorP {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Float,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn i64(name: impl Into<String>, dims: &[usize], values: &[i64]) -> TensorP {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "tensor shape and data disagree");
        TensorP {
            name: name.into(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: DataType::Int64,
            raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

impl Encode for TensorP {
    fn encode(&self, w: &mut Writer) {
        w.int64s_unpacked(1, &self.dims);
        w.int64(2, self.data_type as i64);
        w.opt_string(8, &self.name);
        w.bytes(9, &self.raw_data);
    }
}

/// The value of an `AttributeProto`, with its `AttributeType` (field 20): FLOAT = 1 (f = 2),
/// INT = 2 (i = 3), INTS = 7 (ints = 8, unpacked). The graphs exported need no other kind.
#[derive(Clone, Debug)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    Ints(Vec<i64>),
}

/// `AttributeProto`: name = 1, then the value field, type = 20.
#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
}

impl Attribute {
    pub fn int(name: &str, v: i64) -> Attribute {
        Attribute { name: name.into(), value: AttrValue::Int(v) }
    }
    pub fn ints(name: &str, v: &[i64]) -> Attribute {
        Attribute { name: name.into(), value: AttrValue::Ints(v.to_vec()) }
    }
    pub fn float(name: &str, v: f32) -> Attribute {
        Attribute { name: name.into(), value: AttrValue::Float(v) }
    }
}

impl Encode for Attribute {
    fn encode(&self, w: &mut Writer) {
        w.string(1, &self.name);
        let ty = match &self.value {
            AttrValue::Float(f) => {
                w.float(2, *f);
                1
            }
            AttrValue::Int(i) => {
                w.int64(3, *i);
                2
            }
            AttrValue::Ints(v) => {
                w.int64s_unpacked(8, v);
                7
            }
        };
        w.int64(20, ty);
    }
}

/// `NodeProto`: input = 1, output = 2, name = 3, op_type = 4, attribute = 5, domain = 7.
#[derive(Clone, Debug)]
pub struct Node {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub attributes: Vec<Attribute>,
}

impl Encode for Node {
    fn encode(&self, w: &mut Writer) {
        for i in &self.inputs {
            w.string(1, i);
        }
        for o in &self.outputs {
            w.string(2, o);
        }
        w.opt_string(3, &self.name);
        w.string(4, &self.op_type);
        for a in &self.attributes {
            w.message(5, a);
        }
    }
}

/// One dimension of a shape: a fixed size or a named free one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Value(i64),
    Param(String),
}

/// `ValueInfoProto` (name = 1, type = 2) of a tensor: `TypeProto` (tensor_type = 1) holding a
/// `TypeProto.Tensor` (elem_type = 1, shape = 2), whose `TensorShapeProto` (dim = 1) lists
/// `Dimension`s (dim_value = 1, dim_param = 2).
#[derive(Clone, Debug)]
pub struct ValueInfo {
    pub name: String,
    pub elem_type: DataType,
    pub dims: Vec<Dim>,
}

struct DimP<'a>(&'a Dim);
impl Encode for DimP<'_> {
    fn encode(&self, w: &mut Writer) {
        match self.0 {
            Dim::Value(v) => w.int64(1, *v),
            Dim::Param(p) => w.string(2, p),
        }
    }
}

struct ShapeP<'a>(&'a [Dim]);
impl Encode for ShapeP<'_> {
    fn encode(&self, w: &mut Writer) {
        for d in self.0 {
            w.message(1, &DimP(d));
        }
    }
}

struct TensorTypeP<'a>(&'a ValueInfo);
impl Encode for TensorTypeP<'_> {
    fn encode(&self, w: &mut Writer) {
        w.int64(1, self.0.elem_type as i64);
        w.message(2, &ShapeP(&self.0.dims));
    }
}

struct TypeP<'a>(&'a ValueInfo);
impl Encode for TypeP<'_> {
    fn encode(&self, w: &mut Writer) {
        w.message(1, &TensorTypeP(self.0));
    }
}

impl Encode for ValueInfo {
    fn encode(&self, w: &mut Writer) {
        w.string(1, &self.name);
        w.message(2, &TypeP(self));
    }
}

/// `GraphProto`: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11,
/// output = 12.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub name: String,
    pub initializers: Vec<TensorP>,
    pub doc_string: String,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
}

impl Encode for Graph {
    fn encode(&self, w: &mut Writer) {
        for n in &self.nodes {
            w.message(1, n);
        }
        w.string(2, &self.name);
        for t in &self.initializers {
            w.message(5, t);
        }
        w.opt_string(10, &self.doc_string);
        for i in &self.inputs {
            w.message(11, i);
        }
        for o in &self.outputs {
            w.message(12, o);
        }
    }
}

/// `ModelProto`: ir_version = 1, producer_name = 2, producer_version = 3, domain = 4,
/// model_version = 5, doc_string = 6, graph = 7, opset_import = 8, metadata_props = 14.
#[derive(Clone, Debug)]
pub struct Model {
    pub ir_version: i64,
    pub producer_name: String,
    pub producer_version: String,
    pub domain: String,
    pub model_version: i64,
    pub doc_string: String,
    pub graph: Graph,
    pub opset_import: Vec<OpsetId>,
    pub metadata: Vec<Entry>,
}

impl Encode for Model {
    fn encode(&self, w: &mut Writer) {
        w.int64(1, self.ir_version);
        w.opt_string(2, &self.producer_name);
        w.opt_string(3, &self.producer_version);
        w.opt_string(4, &self.domain);
        w.int64(5, self.model_version);
        w.opt_string(6, &self.doc_string);
        w.message(7, &self.graph);
        for o in &self.opset_import {
            w.message(8, o);
        }
        for m in &self.metadata {
            w.message(14, m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        b
    }

    #[test]
    fn varint_edge_cases() {
        assert_eq!(varint(0), [0x00]);
        assert_eq!(varint(1), [0x01]);
        assert_eq!(varint(127), [0x7f]);
        assert_eq!(varint(128), [0x80, 0x01]);
        assert_eq!(varint(300), [0xac, 0x02]);
        assert_eq!(varint(16_383), [0xff, 0x7f]);
        assert_eq!(varint(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(varint(u32::MAX as u64), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(varint(u64::MAX), max);
    }

    #[test]
    fn negative_int64_takes_ten_bytes() {
        let mut w = Writer::default();
        w.int64(3, -1);
        let mut want = vec![0x18];
        want.extend([0xff; 9]);
        want.push(0x01);
        assert_eq!(w.buf, want);
        let mut w = Writer::default();
        w.int64(3, -2);
        assert_eq!(w.buf[1], 0xfe);
        assert_eq!(w.buf.len(), 11);
    }

    #[test]
    fn keys_scalars_and_strings() {
        let mut w = Writer::default();
        w.int64(1, 7); // key 1<<3|0
        w.float(2, 1.0); // key 2<<3|5 = 0x15, then 1.0f32 little-endian
        w.string(4, "Relu"); // key 4<<3|2 = 0x22, length 4
        w.int64(20, 2); // key 160 needs two bytes
        assert_eq!(
            w.buf,
            [0x08, 0x07, 0x15, 0x00, 0x00, 0x80, 0x3f, 0x22, 0x04, b'R', b'e', b'l', b'u', 0xa0, 0x01, 0x02]
        );
    }

    #[test]
    fn packed_and_unpacked_repeated_ints() {
        let mut w = Writer::default();
        w.int64s_unpacked(8, &[1, 300]);
        assert_eq!(w.buf, [0x40, 0x01, 0x40, 0xac, 0x02]);
        let mut w = Writer::default();
        w.int64s_packed(8, &[1, 300]);
        assert_eq!(w.buf, [0x42, 0x03, 0x01, 0xac, 0x02]);
    }

    #[test]
    fn attributes_carry_their_type() {
        // name "axis", i = -1, type INT (2)
        let b = Attribute::int("axis", -1).to_bytes();
        let mut want = vec![0x0a, 0x04, b'a', b'x', b'i', b's', 0x18];
        want.extend([0xff; 9]);
        want.extend([0x01, 0xa0, 0x01, 0x02]);
        assert_eq!(b, want);
        // ints are unpacked (proto2 without [packed = true]), type INTS (7)
        let b = Attribute::ints("perm", &[0, 2]).to_bytes();
        assert_eq!(b, [0x0a, 0x04, b'p', b'e', b'r', b'm', 0x40, 0x00, 0x40, 0x02, 0xa0, 0x01, 0x07]);
        let b = Attribute::float("epsilon", 0.5).to_bytes();
        assert_eq!(&b[9..], [0x15, 0x00, 0x00, 0x00, 0x3f, 0xa0, 0x01, 0x01]);
    }

    #[test]
    fn tensor_dims_unpacked_and_raw_little_endian() {
        let t = TensorP::f32("w", &[1, 2], &[1.0, -2.0]);
        assert_eq!(
            t.to_bytes(),
            [
                0x08, 0x01, 0x08, 0x02, // dims 1, 2
                0x10, 0x01, // data_type FLOAT
                0x42, 0x01, b'w', // name
                0x4a, 0x08, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, // raw_data
            ]
        );
        let t = TensorP::i64("", &[], &[5]);
        assert_eq!(t.to_bytes(), [0x10, 0x07, 0x4a, 0x08, 5, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn nested_messages_are_length_prefixed() {
        let v = ValueInfo {
            name: "x".into(),
            elem_type: DataType::Float,
            dims: vec![Dim::Param("N".into()), Dim::Value(3)],
        };
        assert_eq!(
            v.to_bytes(),
            [
                0x0a, 0x01, b'x', // name
                0x12, 0x0f, // type: TypeProto, 15 bytes
                0x0a, 0x0d, // tensor_type, 13 bytes
                0x08, 0x01, // elem_type FLOAT
                0x12, 0x09, // shape, 9 bytes
                0x0a, 0x03, 0x12, 0x01, b'N', // dim { dim_param: "N" }
                0x0a, 0x02, 0x08, 0x03, // dim { dim_value: 3 }
            ]
        );
        let o = OpsetId { domain: String::new(), version: 13 };
        assert_eq!(o.to_bytes(), [0x10, 0x0d]);
        let m = Model {
            ir_version: 7,
            producer_name: "p".into(),
            producer_version: String::new(),
            domain: String::new(),
            model_version: 1,
            doc_string: String::new(),
            graph: Graph { name: "g".into(), ..Default::default() },
            opset_import: vec![o],
            metadata: vec![Entry { key: "k".into(), value: "v".into() }],
        };
        assert_eq!(
            m.to_bytes(),
            [
                0x08, 0x07, 0x12, 0x01, b'p', 0x28, 0x01, // ir_version, producer_name, model_version
                0x3a, 0x03, 0x12, 0x01, b'g', // graph { name: "g" }
                0x42, 0x02, 0x10, 0x0d, // opset_import { version: 13 }
                0x72, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, b'v', // metadata_props (14)
            ]
        );
    }

    #[test]
    fn long_messages_get_multi_byte_lengths() {
        let t = TensorP::f32("", &[40], &[0.0; 40]); // 160 bytes of raw data
        let b = t.to_bytes();
        assert_eq!(&b[..5], [0x08, 40, 0x10, 0x01, 0x4a]);
        assert_eq!(&b[5..7], [0xa0, 0x01]);
        assert_eq!(b.len(), 7 + 160);
    }
}
