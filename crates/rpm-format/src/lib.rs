//! RPM v4 package format. Parsers never trust a length or count from the input. Knows nothing
//! about crypto.
#![forbid(unsafe_code)]
