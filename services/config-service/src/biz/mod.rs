//! The domain of config-service: types and use cases, free of SQL, gRPC and HTTP. Repositories are
//! traits defined here and implemented in `data/`. The foundation gives this service
//! only `GetServiceInfo`, which needs no domain logic; its capabilities land here.
