//! Counters the kernel or the daemon controls, at the edge of u64: the snapshot's rates
//! saturate instead of wrapping (release) or panicking (debug, as these tests run).

use lookout::snapshot::container::{
    BlkDevice, Container, ContainerInfo, ContainerStats, Derived, NetInterface, Network, State,
};

fn container(read_at: f64, counter: u64) -> Container {
    let nic = |name: &str| NetInterface {
        name: name.into(),
        rx_bytes: counter,
        tx_bytes: counter,
        ..Default::default()
    };
    let disk = |minor: u32| BlkDevice {
        major: 8,
        minor,
        read_bytes: counter,
        write_bytes: counter,
        ..Default::default()
    };
    Container {
        info: ContainerInfo {
            id: "c1".into(),
            state: State::Running,
            pid: 42,
            ..Default::default()
        },
        stats: Some(ContainerStats {
            read_at,
            blkio: vec![disk(0), disk(16)],
            network: Network::Own(vec![nic("eth0"), nic("eth1")]),
            ..Default::default()
        }),
        derived: Derived::default(),
    }
}

#[test]
fn interface_and_blkio_sums_saturate() {
    let prev = container(100.0, u64::MAX - 10);
    let now = container(110.0, u64::MAX);
    let d = Derived::compute(&now, Some(&prev), 110.0, 4, 1 << 30);
    // Both sums saturate at u64::MAX: no rate can be told, but nothing wraps or panics.
    for rate in [
        d.net_rx_bytes_per_second,
        d.net_tx_bytes_per_second,
        d.blk_read_bytes_per_second,
        d.blk_write_bytes_per_second,
    ] {
        assert_eq!(rate, Some(0.0));
    }
}
