// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ROM parser on crafted chains (real ROMs from Debian's packages: tests/roms).

mod common;

use common::rom_image;
use vfio_early_core::pci::PciId;
use vfio_early_core::rom::{clean_range, inspect, Finding, CODE_EFI, CODE_X86};

fn gpu_rom() -> Vec<u8> {
    let mut d = rom_image(0x1234, 0x1111, 0x030000, 2, CODE_X86, false);
    d.extend(rom_image(0x1234, 0x1111, 0x030000, 1, CODE_EFI, true));
    d
}

#[test]
fn a_valid_two_image_rom() {
    let d = gpu_rom();
    let id = PciId {
        vendor: 0x1234,
        device: 0x1111,
        ..PciId::default()
    };
    let r = inspect(&d, Some(&id));
    assert!(r.ok() && r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.images.len(), 2);
    assert_eq!(r.chain_end, Some(1536));
    assert_eq!(
        (r.images[1].offset, r.images[1].code_type_name()),
        (1024, "efi")
    );
    assert_eq!(r.images[0].x86_checksum_ok, Some(true));
}

#[test]
fn errors_and_warnings() {
    let id = PciId {
        vendor: 0x10de,
        device: 0x1c03,
        ..PciId::default()
    };
    let mut bad_sum = gpu_rom();
    bad_sum[100] ^= 1;
    let mut no_last = gpu_rom();
    no_last[1024 + 0x1C + 0x15] = 0;
    let mut oob = gpu_rom();
    oob[0x18] = 0xF0;
    oob[0x19] = 0xFF;
    let cases: Vec<(Vec<u8>, Finding)> = vec![
        (vec![], Finding::Empty),
        (vec![0xff; 4096], Finding::AllOnes),
        (vec![0; 64], Finding::NoSignature { offset: 0 }),
        (
            gpu_rom()[..1200].to_vec(),
            Finding::PastEnd {
                image: 1,
                end: 1536,
                size: 1200,
            },
        ),
        (no_last, Finding::NoLastImage { images: 2 }),
        (
            oob,
            Finding::PcirPointer {
                image: 0,
                pointer: 0xFFF0,
            },
        ),
        (bad_sum, Finding::Checksum { image: 0 }),
        (
            [gpu_rom(), vec![0xff; 512]].concat(),
            Finding::Trailing {
                bytes: 512,
                blank: true,
            },
        ),
        (
            rom_image(0x1234, 0x1111, 0x030000, 1, CODE_X86, true),
            Finding::NoEfiImage,
        ),
    ];
    for (d, want) in cases {
        let r = inspect(&d, None);
        assert!(
            r.findings.contains(&want),
            "{want:?} not in {:?}",
            r.findings
        );
    }
    let r = inspect(&gpu_rom(), Some(&id));
    assert!(r.ok(), "wrong IDs are a warning");
    assert!(r.findings.contains(&Finding::Ids {
        image: 0,
        found: (0x1234, 0x1111),
        expected: (0x10de, 0x1c03)
    }));
}

#[test]
fn clean_strips_a_header_with_decoys_and_trailing_data() {
    let rom = gpu_rom();
    let mut dump = b"NVFLASH\x55\xAA decoy \x55\xAA\x00\x00".to_vec();
    dump.extend(vec![0x5a; 300]);
    let start = dump.len();
    dump.extend(&rom);
    dump.extend(b"NVIDIA trailing data \x55\xAA");
    let range = clean_range(&dump).unwrap();
    assert_eq!(range, start..start + rom.len());
    assert_eq!(&dump[range], &rom[..]);
    assert_eq!(clean_range(b"\x55\xAA\x55\xAA"), None);
    assert_eq!(clean_range(&[]), None);
}
