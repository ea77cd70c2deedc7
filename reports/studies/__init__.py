"""One module (or small package) per study's report, registered with `reports.registry.register`
on the sweeps' study_kind tag. Each holds only what is particular to its study; the shared parts
(grouping, resampling, tables, sections, plots, CSVs) are in reports/. A new study's report is one
new file here: reports.registry imports every module of this package."""
