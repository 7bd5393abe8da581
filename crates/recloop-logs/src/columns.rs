//! Typed, zero-copy-where-possible access to the columns of a log record batch, accepting the
//! canonical types and what other tools write (any integer width, timestamps, plain or
//! dictionary strings).

use std::borrow::Cow;
use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

use crate::error::{LogsError, Result};

fn column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<&'a ArrayRef> {
    let arr = batch
        .column_by_name(name)
        .ok_or_else(|| LogsError::Schema {
            path: source.into(),
            message: format!("missing column `{name}`"),
        })?;
    if arr.null_count() > 0 {
        return Err(LogsError::Schema {
            path: source.into(),
            message: format!("column `{name}` contains {} null values", arr.null_count()),
        });
    }
    Ok(arr)
}

fn wrong_type(name: &str, source: &str, dt: &DataType, want: &str) -> LogsError {
    LogsError::Schema {
        path: source.into(),
        message: format!("column `{name}` has type {dt}, expected {want}"),
    }
}

/// Converts any integer column to `T` row by row; `conv` rejects values out of range.
fn convert_ints<T>(
    arr: &ArrayRef,
    name: &str,
    source: &str,
    want: &str,
    conv: impl Fn(i128) -> Option<T>,
) -> Result<Vec<T>> {
    macro_rules! go {
        ($t:ty) => {{
            let v = arr.as_primitive::<$t>().values();
            let mut out = Vec::with_capacity(v.len());
            for &x in v.iter() {
                let x = i128::from(x);
                match conv(x) {
                    Some(y) => out.push(y),
                    None => {
                        return Err(LogsError::Schema {
                            path: source.into(),
                            message: format!(
                                "column `{name}` has value {x} outside the range of {want}"
                            ),
                        });
                    }
                }
            }
            Ok(out)
        }};
    }
    match arr.data_type() {
        DataType::Int8 => go!(Int8Type),
        DataType::Int16 => go!(Int16Type),
        DataType::Int32 => go!(Int32Type),
        DataType::Int64 => go!(Int64Type),
        DataType::UInt8 => go!(UInt8Type),
        DataType::UInt16 => go!(UInt16Type),
        DataType::UInt32 => go!(UInt32Type),
        DataType::UInt64 => go!(UInt64Type),
        dt => Err(wrong_type(name, source, dt, want)),
    }
}

/// Unsigned 64-bit ids: UInt64 without copying; any other integer width (signed or unsigned,
/// 8 to 64 bits) converted, negative values rejected.
pub fn u64_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [u64]>> {
    let arr = column(batch, name, source)?;
    match arr.data_type() {
        DataType::UInt64 => Ok(Cow::Borrowed(
            arr.as_primitive::<UInt64Type>().values().as_ref(),
        )),
        _ => convert_ints(arr, name, source, "UInt64", |x| u64::try_from(x).ok()).map(Cow::Owned),
    }
}

/// Signed 64-bit times: Int64 without copying; other integer widths converted; Parquet/Arrow
/// timestamps of any unit as microseconds since the epoch (seconds and milliseconds scaled up,
/// nanoseconds floored), so that tables written with different timestamp units compare.
pub fn i64_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [i64]>> {
    let arr = column(batch, name, source)?;
    let scaled = |v: &[i64], mul: i64| -> Result<Cow<'a, [i64]>> {
        v.iter()
            .map(|&x| {
                x.checked_mul(mul).ok_or_else(|| LogsError::Schema {
                    path: source.into(),
                    message: format!("column `{name}` has timestamp {x} out of range"),
                })
            })
            .collect::<Result<Vec<i64>>>()
            .map(Cow::Owned)
    };
    match arr.data_type() {
        DataType::Int64 => Ok(Cow::Borrowed(
            arr.as_primitive::<Int64Type>().values().as_ref(),
        )),
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Microsecond => Ok(Cow::Borrowed(
                arr.as_primitive::<TimestampMicrosecondType>()
                    .values()
                    .as_ref(),
            )),
            TimeUnit::Second => scaled(
                arr.as_primitive::<TimestampSecondType>().values(),
                1_000_000,
            ),
            TimeUnit::Millisecond => scaled(
                arr.as_primitive::<TimestampMillisecondType>().values(),
                1_000,
            ),
            TimeUnit::Nanosecond => Ok(Cow::Owned(
                arr.as_primitive::<TimestampNanosecondType>()
                    .values()
                    .iter()
                    .map(|&x| x.div_euclid(1_000))
                    .collect(),
            )),
        },
        _ => convert_ints(arr, name, source, "Int64", |x| i64::try_from(x).ok()).map(Cow::Owned),
    }
}

/// Unsigned 32-bit day indices: UInt32 without copying; other integer widths converted with
/// range checks; Date32 as days since the epoch.
pub fn u32_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [u32]>> {
    let arr = column(batch, name, source)?;
    match arr.data_type() {
        DataType::UInt32 => Ok(Cow::Borrowed(
            arr.as_primitive::<UInt32Type>().values().as_ref(),
        )),
        DataType::Date32 => arr
            .as_primitive::<Date32Type>()
            .values()
            .iter()
            .map(|&x| {
                u32::try_from(x).map_err(|_| LogsError::Schema {
                    path: source.into(),
                    message: format!("column `{name}` has a date before 1970 ({x})"),
                })
            })
            .collect::<Result<Vec<u32>>>()
            .map(Cow::Owned),
        _ => convert_ints(arr, name, source, "UInt32", |x| u32::try_from(x).ok()).map(Cow::Owned),
    }
}

/// 64-bit floats: Float64 without copying; Float32 and any integer width converted.
pub fn f64_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<Cow<'a, [f64]>> {
    let arr = column(batch, name, source)?;
    match arr.data_type() {
        DataType::Float64 => Ok(Cow::Borrowed(
            arr.as_primitive::<Float64Type>().values().as_ref(),
        )),
        DataType::Float32 => Ok(Cow::Owned(
            arr.as_primitive::<Float32Type>()
                .values()
                .iter()
                .map(|&x| f64::from(x))
                .collect(),
        )),
        // Integers above 2^53 round to the nearest double, as in SQL engines.
        _ => convert_ints(arr, name, source, "Float64", |x| Some(x as f64)).map(Cow::Owned),
    }
}

/// A string column as per-row keys into a small dictionary.
#[derive(Debug, Clone)]
pub struct StrColumn<'a> {
    /// Key of each row into `dictionary`.
    pub keys: Cow<'a, [u32]>,
    /// Distinct strings.
    pub dictionary: Vec<String>,
}

fn keys_of<T: arrow_array::types::ArrowDictionaryKeyType>(arr: &ArrayRef) -> (Vec<u32>, ArrayRef)
where
    T::Native: TryInto<u32>,
{
    let d = arr.as_dictionary::<T>();
    let keys = d
        .keys()
        .values()
        .iter()
        .map(|&k| k.try_into().unwrap_or(u32::MAX))
        .collect();
    (keys, d.values().clone())
}

/// Strings: Dictionary(any integer key, Utf8) without copying the rows; plain Utf8/LargeUtf8
/// are interned row by row.
pub fn str_column<'a>(batch: &'a RecordBatch, name: &str, source: &str) -> Result<StrColumn<'a>> {
    let arr = column(batch, name, source)?;
    let strings_of = |values: &ArrayRef| -> Result<Vec<String>> {
        match values.data_type() {
            DataType::Utf8 => Ok(values
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect()),
            DataType::LargeUtf8 => Ok(values
                .as_string::<i64>()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect()),
            DataType::Utf8View => Ok(values
                .as_string_view()
                .iter()
                .map(|s| s.unwrap_or("").to_string())
                .collect()),
            dt => Err(wrong_type(name, source, dt, "Dictionary(Int32, Utf8)")),
        }
    };
    match arr.data_type() {
        DataType::Dictionary(key, _) => {
            let (keys, values): (Cow<'a, [u32]>, ArrayRef) = match key.as_ref() {
                DataType::Int32 => {
                    let d = arr.as_dictionary::<Int32Type>();
                    let k: Vec<u32> = d.keys().values().iter().map(|&k| k as u32).collect();
                    (Cow::Owned(k), d.values().clone())
                }
                DataType::UInt32 => {
                    let d = arr.as_dictionary::<UInt32Type>();
                    (
                        Cow::Borrowed(d.keys().values().as_ref()),
                        d.values().clone(),
                    )
                }
                DataType::Int8 => {
                    let (k, v) = keys_of::<Int8Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::Int16 => {
                    let (k, v) = keys_of::<Int16Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::UInt8 => {
                    let (k, v) = keys_of::<UInt8Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::UInt16 => {
                    let (k, v) = keys_of::<UInt16Type>(arr);
                    (Cow::Owned(k), v)
                }
                DataType::Int64 => {
                    let (k, v) = keys_of::<Int64Type>(arr);
                    (Cow::Owned(k), v)
                }
                dt => return Err(wrong_type(name, source, dt, "Dictionary(Int32, Utf8)")),
            };
            let dictionary = strings_of(&values)?;
            if let Some(bad) = keys.iter().find(|&&k| k as usize >= dictionary.len()) {
                return Err(LogsError::Schema {
                    path: source.into(),
                    message: format!(
                        "column `{name}` has dictionary key {bad} outside its dictionary"
                    ),
                });
            }
            Ok(StrColumn { keys, dictionary })
        }
        DataType::Utf8 => Ok(intern(arr.as_string::<i32>().iter())),
        DataType::LargeUtf8 => Ok(intern(arr.as_string::<i64>().iter())),
        DataType::Utf8View => Ok(intern(arr.as_string_view().iter())),
        dt => Err(wrong_type(name, source, dt, "Dictionary(Int32, Utf8)")),
    }
}

/// Interns plain strings row by row without allocating per row.
fn intern<'s, 'a>(rows: impl Iterator<Item = Option<&'s str>>) -> StrColumn<'a> {
    let mut map: HashMap<&'s str, u32> = HashMap::new();
    let mut dictionary = Vec::new();
    let keys = rows
        .map(|s| {
            let s = s.unwrap_or("");
            *map.entry(s).or_insert_with(|| {
                dictionary.push(s.to_string());
                (dictionary.len() - 1) as u32
            })
        })
        .collect();
    StrColumn {
        keys: Cow::Owned(keys),
        dictionary,
    }
}
