"""The database schema of study data, data cuts, derived tables and users.

Study records are versioned, never overwritten: each ingestion run (a *data cut*) that sees a record new or
changed adds a version whose ``valid_from_run`` is that run; the version it replaces, or a record missing from a
full extract, gets ``valid_to_run`` set. The records of cut C are the versions with
``valid_from_run <= C < valid_to_run`` (or ``valid_to_run`` empty). Raw SDTM values are kept as text beside
anything derived from them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

RunId = Annotated[int, mapped_column(ForeignKey("ingestion_runs.id"), index=True)]
StudyId = Annotated[str, mapped_column(String(64), ForeignKey("studies.study_id"), index=True)]
SdtmText = Annotated[str | None, mapped_column(Text)]


def utcnow() -> dt.datetime:
    """Now, in UTC, with its time zone."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: DateTime(timezone=True), dict[str, Any]: JSON}


class Study(Base):
    """A study and the settings its derivations follow."""

    __tablename__ = "studies"

    study_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cohort_column: Mapped[str | None] = mapped_column(String(64))
    window_days: Mapped[int] = mapped_column(Integer, default=90)
    ctcae_version: Mapped[str] = mapped_column(String(8), default="5.0")
    ae_key_columns: Mapped[str] = mapped_column(String(200), default="USUBJID,AESEQ")
    lb_key_columns: Mapped[str] = mapped_column(String(200), default="USUBJID,LBSEQ", server_default="USUBJID,LBSEQ")
    related_values: Mapped[str] = mapped_column(String(200), default="RELATED,PROBABLE,POSSIBLE,Y")
    # AE column whose equal non-empty values (per subject and PT) make grade-period records one event.
    episode_key: Mapped[str | None] = mapped_column(String(64))
    # Guards against a wiped study: a run above either share fails unless accepted (ingest --accept-large-change).
    max_removed_pct: Mapped[float] = mapped_column(Float, default=10.0)
    max_quarantined_pct: Mapped[float] = mapped_column(Float, default=10.0)
    # Dose-limiting toxicities (DOMAIN.md §6): the AE column (or SUPPAE qualifier) flagging a DLT with Y, and the
    # DLT period in days from the first dose.
    dlt_column: Mapped[str] = mapped_column(String(64), default="AEDLT", server_default="AEDLT")
    dlt_days: Mapped[int] = mapped_column(Integer, default=21, server_default="21")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Written first in every load transaction: serialises two loads of one study (a row lock on
    # PostgreSQL, the write lock on SQLite).
    last_load_at: Mapped[dt.datetime | None]


class IngestionRun(Base):
    """One ingestion run; a succeeded run is a data cut."""

    __tablename__ = "ingestion_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("studies.study_id"), index=True)
    source: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(16), default="cli")
    worker: Mapped[str] = mapped_column(String(200), default="")  # host:pid of the process that ran it
    status: Mapped[str] = mapped_column(String(16), default="running")
    message: Mapped[str] = mapped_column(Text, default="")
    cutoff: Mapped[dt.date | None] = mapped_column(Date)
    checksums: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the run read, one entry per domain file: domain, path, sha256, encoding, rows.
    files: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    accepted_large_change: Mapped[bool] = mapped_column(Boolean, default=False)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    derived_at: Mapped[dt.datetime | None]

    __table_args__ = (Index("ix_ingestion_runs_study_status", "study_id", "status"),)


class _Versioned:
    """Columns every versioned study record carries."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: the table's index of current versions (study_id, record_key, valid_to_run) serves every
    # lookup by study, and one index less is a tenth less work per row in a bulk load (migration 0006).
    study_id: Mapped[str] = mapped_column(String(64), ForeignKey("studies.study_id"))
    record_key: Mapped[str] = mapped_column(Text)
    usubjid: Mapped[str] = mapped_column(String(100))
    content_hash: Mapped[str] = mapped_column(String(32))
    change: Mapped[str] = mapped_column(String(8))  # new | changed: how this version arose
    valid_from_run: Mapped[int] = mapped_column(Integer)
    valid_to_run: Mapped[int | None] = mapped_column(Integer)
    source_row: Mapped[int] = mapped_column(Integer)
    extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class SubjectVersion(_Versioned, Base):
    """A DM row as delivered in a data cut."""

    __tablename__ = "subject_versions"

    siteid: Mapped[SdtmText]
    arm: Mapped[SdtmText]
    actarm: Mapped[SdtmText]
    age: Mapped[SdtmText]
    sex: Mapped[SdtmText]
    rfxstdtc: Mapped[SdtmText]
    rfxendtc: Mapped[SdtmText]
    dthdtc: Mapped[SdtmText]
    dthfl: Mapped[SdtmText]

    __table_args__ = (Index("ix_subject_versions_current", "study_id", "record_key", "valid_to_run"),)


class ExposureVersion(_Versioned, Base):
    """An EX row as delivered in a data cut."""

    __tablename__ = "exposure_versions"

    exseq: Mapped[SdtmText]
    extrt: Mapped[SdtmText]
    exdose: Mapped[float | None] = mapped_column(Float)
    exdosu: Mapped[SdtmText]
    exstdtc: Mapped[SdtmText]
    exendtc: Mapped[SdtmText]

    __table_args__ = (Index("ix_exposure_versions_current", "study_id", "record_key", "valid_to_run"),)


class AdverseEventVersion(_Versioned, Base):
    """An AE row as delivered in a data cut; ``aetoxgr`` keeps the raw grade text."""

    __tablename__ = "ae_versions"

    aeseq: Mapped[SdtmText]
    aespid: Mapped[SdtmText]
    aeterm: Mapped[SdtmText]
    aedecod: Mapped[SdtmText]
    aebodsys: Mapped[SdtmText]
    aetoxgr: Mapped[SdtmText]
    aesev: Mapped[SdtmText]
    aeser: Mapped[SdtmText]
    aesdth: Mapped[SdtmText]
    aeslife: Mapped[SdtmText]
    aeshosp: Mapped[SdtmText]
    aesdisab: Mapped[SdtmText]
    aescong: Mapped[SdtmText]
    aesmie: Mapped[SdtmText]
    aerel: Mapped[SdtmText]
    aeacn: Mapped[SdtmText]
    aeout: Mapped[SdtmText]
    aestdtc: Mapped[SdtmText]
    aeendtc: Mapped[SdtmText]
    aegrpid: Mapped[SdtmText]

    __table_args__ = (Index("ix_ae_versions_current", "study_id", "record_key", "valid_to_run"),)


class LabVersion(_Versioned, Base):
    """An LB row (or an ADLB row mapped onto LB) as delivered in a data cut; results in standard units."""

    __tablename__ = "lb_versions"

    lbseq: Mapped[SdtmText]
    lbtestcd: Mapped[SdtmText]
    lbtest: Mapped[SdtmText]
    lbcat: Mapped[SdtmText]
    lborres: Mapped[SdtmText]
    lborresu: Mapped[SdtmText]
    lbstresc: Mapped[SdtmText]
    lbstresn: Mapped[float | None] = mapped_column(Float)
    lbstresu: Mapped[SdtmText]
    lbstnrlo: Mapped[float | None] = mapped_column(Float)
    lbstnrhi: Mapped[float | None] = mapped_column(Float)
    lbnrind: Mapped[SdtmText]
    lbblfl: Mapped[SdtmText]
    lblobxfl: Mapped[SdtmText]
    visitnum: Mapped[SdtmText]
    visit: Mapped[SdtmText]
    lbdtc: Mapped[SdtmText]

    __table_args__ = (Index("ix_lb_versions_current", "study_id", "record_key", "valid_to_run"),)


class QuarantinedRow(Base):
    """A source row that could not be loaded, with the reason and the row as read."""

    __tablename__ = "quarantined_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[RunId]
    domain: Mapped[str] = mapped_column(String(8))
    file: Mapped[str] = mapped_column(Text)
    row_number: Mapped[int] = mapped_column(Integer)
    column: Mapped[str | None] = mapped_column(String(64))
    value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)


class DerivedSubject(Base):
    """Subject-level derivations of one data cut (DOMAIN.md §2)."""

    __tablename__ = "derived_subjects"

    run_id: Mapped[int] = mapped_column(ForeignKey("ingestion_runs.id"), primary_key=True)
    usubjid: Mapped[str] = mapped_column(String(100), primary_key=True)
    subject_version_id: Mapped[int] = mapped_column(Integer)
    cohort: Mapped[str | None] = mapped_column(Text)
    trtsdt: Mapped[dt.date | None] = mapped_column(Date)
    trtedt: Mapped[dt.date | None] = mapped_column(Date)
    dthdt: Mapped[dt.date | None] = mapped_column(Date)
    saffl: Mapped[bool] = mapped_column(Boolean)
    window_end: Mapped[dt.date | None] = mapped_column(Date)
    days_at_risk: Mapped[int | None] = mapped_column(Integer)
    n_doses: Mapped[int] = mapped_column(Integer)


class DerivedEvent(Base):
    """Event-level derivations of one data cut (DOMAIN.md §3), one row per AE version in the cut.

    ``run_id`` carries no foreign key on purpose: :func:`safety_dash.analysis.derive_cut` alone writes these rows,
    in the transaction that commits their run, and PostgreSQL's check of a key costs a trigger call per row (4.3 s
    of a 1,000,000-event cut's 11.8 s COPY, measured 2026-12-01). Migration 0006 removed it.
    """

    __tablename__ = "derived_events"

    run_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ae_version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    usubjid: Mapped[str] = mapped_column(String(100))
    soc: Mapped[str] = mapped_column(Text)
    pt: Mapped[str] = mapped_column(Text)
    astdt: Mapped[dt.date | None] = mapped_column(Date)
    astdtf: Mapped[str | None] = mapped_column(String(1))
    astdy: Mapped[int | None] = mapped_column(Integer)
    trtemfl: Mapped[bool] = mapped_column(Boolean)
    window_label: Mapped[str] = mapped_column(String(24))
    after_cutoff: Mapped[bool] = mapped_column(Boolean)
    counted: Mapped[bool] = mapped_column(Boolean)  # treatment-emergent with onset <= the risk window end
    after_death: Mapped[bool] = mapped_column(Boolean)  # onset after the subject's death: a data query
    event_id: Mapped[int] = mapped_column(Integer)  # the AE version id, or the episode's smallest one
    grade: Mapped[int | None] = mapped_column(Integer)
    grade_source: Mapped[str] = mapped_column(String(16))
    serious: Mapped[bool] = mapped_column(Boolean)
    related: Mapped[bool] = mapped_column(Boolean)
    uncoded: Mapped[bool] = mapped_column(Boolean)
    record_change: Mapped[str] = mapped_column(String(9))  # new | changed | unchanged, against the previous cut


class User(Base):
    """A person who may sign in; passwords are stored only as salted hashes."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))  # monitor | committee | admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Raised by sign-out, disabling, a role change or a new password: a session of an older generation is refused.
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class DerivedSignal(Base):
    """Signals of one data cut (DOMAIN.md §7): one row per analysis, test, group and term, as the ``signals`` command.

    ``analysis`` names the variant stored at derivation (``pt`` or ``soc``: the study's cohorts, no filters); other
    variants are computed on demand. Undefined values are NULL (``rate_ratio`` and ``rr_ci_high`` when x0 = 0).
    ``first_flagged_run`` is the first cut of the study in which the row's (test, group, term) was flagged.
    """

    __tablename__ = "derived_signals"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("ingestion_runs.id"))
    analysis: Mapped[str] = mapped_column(String(16))
    test: Mapped[str] = mapped_column(String(8))
    group_name: Mapped[str] = mapped_column(Text)
    soc: Mapped[str] = mapped_column(Text)
    pt: Mapped[str] = mapped_column(Text)
    x1: Mapped[int] = mapped_column(Integer)
    py1: Mapped[float] = mapped_column(Float)
    x0: Mapped[int] = mapped_column(Integer)
    py0: Mapped[float] = mapped_column(Float)
    rate_ratio: Mapped[float | None] = mapped_column(Float)
    rr_ci_low: Mapped[float | None] = mapped_column(Float)
    rr_ci_high: Mapped[float | None] = mapped_column(Float)
    p_one_sided: Mapped[float | None] = mapped_column(Float)
    q_pt: Mapped[float | None] = mapped_column(Float)
    q_soc: Mapped[float | None] = mapped_column(Float)
    flagged: Mapped[bool] = mapped_column(Boolean)
    first_flagged_run: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_derived_signals_run_analysis", "run_id", "analysis"),)


class AuditEvent(Base):
    """One action in the append-only audit trail (never updated or deleted; triggers refuse both).

    ``row_hash`` is the SHA-256 of the previous row's hash and this row's content (:mod:`safety_dash.audit`), so a
    row altered or removed around the triggers breaks the chain that ``audit verify`` walks.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # a user name, or "system" / "cli" for processes
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(Text)
    study_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[str | None] = mapped_column(Text)  # JSON
    after: Mapped[str | None] = mapped_column(Text)  # JSON
    reason: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_action_object", "action", "object_id", "occurred_at"),
    )


class Review(Base):
    """A review (or its withdrawal) of one version of an AE record or a subject; rows are only ever added.

    The status of a record in a cut is that of its latest review row: ``reviewed`` when that row reviewed the
    version in the cut, ``outdated`` when it reviewed an earlier version, ``not reviewed`` without a row or after
    a withdrawal.
    """

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[StudyId]
    record_type: Mapped[str] = mapped_column(String(8))  # ae | subject
    record_key: Mapped[str] = mapped_column(Text)
    version_id: Mapped[int] = mapped_column(Integer)
    reviewed: Mapped[bool] = mapped_column(Boolean)  # False: the review was withdrawn
    username: Mapped[str] = mapped_column(String(64))
    reviewed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_reviews_record", "study_id", "record_type", "record_key"),)


class Comment(Base):
    """A comment on an AE record or a subject, optionally raising a data query to the site."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[StudyId]
    record_type: Mapped[str] = mapped_column(String(8))  # ae | subject
    record_key: Mapped[str] = mapped_column(Text)
    usubjid: Mapped[str] = mapped_column(String(100))
    version_id: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    text: Mapped[str] = mapped_column(Text)
    query_status: Mapped[str | None] = mapped_column(String(16))  # None (a plain comment) | open | answered | closed

    __table_args__ = (Index("ix_comments_record", "study_id", "record_type", "record_key"),)
