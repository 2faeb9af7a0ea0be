"""Built-in image readers: NIfTI, DICOM (folder, zip, file), ITK formats, 2D images."""

from __future__ import annotations

from medseg.hookspecs import hookimpl
from medseg.io.dicom import read_dicom, sniff_dicom
from medseg.io.image2d import IMAGE_EXTENSIONS, read_image2d, sniff_image2d
from medseg.io.itk import ITK_EXTENSIONS, read_itk, sniff_itk
from medseg.io.nifti import read_nifti, sniff_nifti
from medseg.specs import ReaderSpec


@hookimpl
def medseg_register_readers() -> list[ReaderSpec]:
    return [
        ReaderSpec(
            name="nifti",
            sniff=sniff_nifti,
            read=read_nifti,
            description="NIfTI-1/2 (.nii, .nii.gz), 2D/3D/4D, via nibabel",
            extensions=(".nii", ".nii.gz"),
            priority=30,
        ),
        ReaderSpec(
            name="dicom",
            sniff=sniff_dicom,
            read=read_dicom,
            description="DICOM series folder, zipped series, or single/multi-frame file",
            extensions=(".dcm", ".zip"),
            priority=20,
        ),
        ReaderSpec(
            name="itk",
            sniff=sniff_itk,
            read=read_itk,
            description="NRRD and MetaImage (.nrrd, .nhdr, .mha, .mhd) via SimpleITK",
            extensions=ITK_EXTENSIONS,
            priority=10,
        ),
        ReaderSpec(
            name="image2d",
            sniff=sniff_image2d,
            read=read_image2d,
            description="PNG, JPEG, TIFF, BMP as 2D images via Pillow",
            extensions=IMAGE_EXTENSIONS,
            priority=0,
        ),
    ]
