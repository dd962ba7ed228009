//! The generated Switchyard API: prost messages with proto3-JSON serde impls, tonic
//! server and client stubs, and the encoded descriptor set that reflection and the HTTP
//! transcoder read. `proto/` is the only source of truth; nothing here is written by hand.

/// The encoded `FileDescriptorSet` of every compiled proto, annotations included.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/switchyard_descriptor.bin"));

/// `google.api`: the HTTP annotations our protos carry.
pub mod google {
    pub mod api {
        include!(concat!(env!("OUT_DIR"), "/google.api.rs"));
        include!(concat!(env!("OUT_DIR"), "/google.api.serde.rs"));
    }
}

macro_rules! proto_package {
    ($name:ident, $file:literal) => {
        pub mod $name {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/switchyard.", $file, ".v1.rs"));
                include!(concat!(env!("OUT_DIR"), "/switchyard.", $file, ".v1.serde.rs"));
            }
        }
    };
}

proto_package!(runtime, "runtime");
proto_package!(config, "config");
proto_package!(flags, "flags");
proto_package!(experiments, "experiments");
proto_package!(realtime, "realtime");
proto_package!(presence, "presence");
#[cfg(feature = "testing")]
proto_package!(testing, "testing");

/// flagd's protocols (evaluation v1 and v2, sync v1), served by flag-service. Same packages,
/// services, fields and numbers as flagd publishes, so unmodified providers work.
pub mod flagd {
    pub mod evaluation {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/flagd.evaluation.v1.rs"));
        }
        pub mod v2 {
            include!(concat!(env!("OUT_DIR"), "/flagd.evaluation.v2.rs"));
        }
    }
    pub mod sync {
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/flagd.sync.v1.rs"));
        }
    }
}
