pub mod pb {
    #![allow(clippy::all, clippy::pedantic)]
    tonic::include_proto!("wagate.v1");
    pub const DESCRIPTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/wagate_descriptor.bin"));
}
