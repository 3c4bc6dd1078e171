-- The tables of openstreetmap-website (the Rails application behind openstreetmap.org) that hold
-- its users' accounts and what they write, with their keys and foreign keys, schema only.
-- Source: https://github.com/openstreetmap/openstreetmap-website (db/structure.sql), licensed under
-- the GNU General Public License 2.0 (https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt),
-- Copyright the openstreetmap-website contributors.
--
-- Changes for the scanner's tests: only the tables about users (the map data's node, way and
-- relation tables, the job, storage and ACL tables are left out); no data, functions, sequences or
-- indexes; primary and foreign keys are declared in the tables rather than added after them.

CREATE TYPE format_enum AS ENUM ('html', 'markdown', 'text');
CREATE TYPE gpx_visibility_enum AS ENUM ('private', 'public', 'trackable', 'identifiable');
CREATE TYPE issue_status_enum AS ENUM ('open', 'ignored', 'resolved');
CREATE TYPE note_event_enum AS ENUM ('opened', 'closed', 'reopened', 'commented', 'hidden');
CREATE TYPE note_status_enum AS ENUM ('open', 'closed', 'hidden');
CREATE TYPE user_role_enum AS ENUM ('administrator', 'moderator', 'importer');
CREATE TYPE user_status_enum AS ENUM ('pending', 'active', 'confirmed', 'suspended', 'deleted');

CREATE TABLE languages (
    code character varying NOT NULL PRIMARY KEY,
    english_name character varying NOT NULL,
    native_name character varying
);

CREATE TABLE users (
    email character varying NOT NULL,
    id bigint NOT NULL PRIMARY KEY,
    pass_crypt character varying NOT NULL,
    creation_time timestamp without time zone NOT NULL,
    display_name character varying DEFAULT ''::character varying NOT NULL,
    data_public boolean DEFAULT false NOT NULL,
    description text DEFAULT ''::text NOT NULL,
    home_lat double precision,
    home_lon double precision,
    home_zoom smallint DEFAULT 3,
    pass_salt character varying,
    email_valid boolean DEFAULT false NOT NULL,
    new_email character varying,
    languages character varying,
    status user_status_enum DEFAULT 'pending'::user_status_enum NOT NULL,
    terms_agreed timestamp without time zone,
    consider_pd boolean DEFAULT false NOT NULL,
    auth_uid character varying,
    preferred_editor character varying,
    terms_seen boolean DEFAULT false NOT NULL,
    description_format format_enum DEFAULT 'markdown'::format_enum NOT NULL,
    changesets_count integer DEFAULT 0 NOT NULL,
    traces_count integer DEFAULT 0 NOT NULL,
    diary_entries_count integer DEFAULT 0 NOT NULL,
    image_use_gravatar boolean DEFAULT false NOT NULL,
    auth_provider character varying,
    home_tile bigint,
    tou_agreed timestamp without time zone,
    diary_comments_count integer DEFAULT 0,
    note_comments_count integer DEFAULT 0,
    creation_address inet
);

CREATE TABLE changesets (
    id bigint NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    created_at timestamp without time zone NOT NULL,
    min_lat integer,
    max_lat integer,
    min_lon integer,
    max_lon integer,
    closed_at timestamp without time zone NOT NULL,
    num_changes integer DEFAULT 0 NOT NULL
);

CREATE TABLE changeset_comments (
    id integer NOT NULL PRIMARY KEY,
    changeset_id bigint NOT NULL REFERENCES changesets (id),
    author_id bigint NOT NULL REFERENCES users (id),
    body text NOT NULL,
    created_at timestamp without time zone NOT NULL,
    visible boolean NOT NULL
);

CREATE TABLE diary_entries (
    id bigint NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    title character varying NOT NULL,
    body text NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    latitude double precision,
    longitude double precision,
    language_code character varying DEFAULT 'en'::character varying NOT NULL REFERENCES languages (code),
    visible boolean DEFAULT true NOT NULL,
    body_format format_enum DEFAULT 'markdown'::format_enum NOT NULL
);

CREATE TABLE diary_comments (
    id bigint NOT NULL PRIMARY KEY,
    diary_entry_id bigint NOT NULL REFERENCES diary_entries (id),
    user_id bigint NOT NULL REFERENCES users (id),
    body text NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    visible boolean DEFAULT true NOT NULL,
    body_format format_enum DEFAULT 'markdown'::format_enum NOT NULL
);

CREATE TABLE friends (
    id bigint NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    friend_user_id bigint NOT NULL REFERENCES users (id),
    created_at timestamp without time zone
);

CREATE TABLE gpx_files (
    id bigint NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    visible boolean DEFAULT true NOT NULL,
    name character varying DEFAULT ''::character varying NOT NULL,
    size bigint,
    latitude double precision,
    longitude double precision,
    "timestamp" timestamp without time zone NOT NULL,
    description character varying DEFAULT ''::character varying NOT NULL,
    inserted boolean NOT NULL,
    visibility gpx_visibility_enum DEFAULT 'public'::gpx_visibility_enum NOT NULL
);

CREATE TABLE gpx_file_tags (
    gpx_id bigint NOT NULL REFERENCES gpx_files (id),
    tag character varying NOT NULL,
    id bigint NOT NULL PRIMARY KEY
);

CREATE TABLE gps_points (
    altitude double precision,
    trackid integer NOT NULL,
    latitude integer NOT NULL,
    longitude integer NOT NULL,
    gpx_id bigint NOT NULL REFERENCES gpx_files (id),
    "timestamp" timestamp without time zone,
    tile bigint
);

CREATE TABLE messages (
    id bigint NOT NULL PRIMARY KEY,
    from_user_id bigint NOT NULL REFERENCES users (id),
    title character varying NOT NULL,
    body text NOT NULL,
    sent_on timestamp without time zone NOT NULL,
    message_read boolean DEFAULT false NOT NULL,
    to_user_id bigint NOT NULL REFERENCES users (id),
    to_user_visible boolean DEFAULT true NOT NULL,
    from_user_visible boolean DEFAULT true NOT NULL,
    body_format format_enum DEFAULT 'markdown'::format_enum NOT NULL,
    muted boolean DEFAULT false NOT NULL
);

CREATE TABLE notes (
    id bigint NOT NULL PRIMARY KEY,
    latitude integer NOT NULL,
    longitude integer NOT NULL,
    tile bigint NOT NULL,
    updated_at timestamp without time zone NOT NULL,
    created_at timestamp without time zone NOT NULL,
    status note_status_enum NOT NULL,
    closed_at timestamp without time zone
);

CREATE TABLE note_comments (
    id bigint NOT NULL PRIMARY KEY,
    note_id bigint NOT NULL REFERENCES notes (id),
    visible boolean NOT NULL,
    created_at timestamp without time zone NOT NULL,
    author_ip inet,
    author_id bigint REFERENCES users (id),
    body text,
    event note_event_enum
);

CREATE TABLE user_blocks (
    id integer NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    creator_id bigint NOT NULL REFERENCES users (id),
    reason text NOT NULL,
    ends_at timestamp without time zone NOT NULL,
    needs_view boolean DEFAULT false NOT NULL,
    revoker_id bigint REFERENCES users (id),
    created_at timestamp without time zone,
    updated_at timestamp without time zone,
    reason_format format_enum DEFAULT 'markdown'::format_enum NOT NULL,
    deactivates_at timestamp without time zone
);

CREATE TABLE user_preferences (
    user_id bigint NOT NULL REFERENCES users (id),
    k character varying NOT NULL,
    v character varying NOT NULL,
    PRIMARY KEY (user_id, k)
);

CREATE TABLE user_roles (
    id integer NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    role user_role_enum NOT NULL,
    created_at timestamp without time zone,
    updated_at timestamp without time zone,
    granter_id bigint NOT NULL REFERENCES users (id)
);

CREATE TABLE oauth_applications (
    id bigint NOT NULL PRIMARY KEY,
    owner_type character varying NOT NULL,
    owner_id bigint NOT NULL REFERENCES users (id),
    name character varying NOT NULL,
    uid character varying NOT NULL,
    secret character varying NOT NULL,
    redirect_uri text NOT NULL,
    scopes character varying DEFAULT ''::character varying NOT NULL,
    confidential boolean DEFAULT true NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);

CREATE TABLE oauth_access_tokens (
    id bigint NOT NULL PRIMARY KEY,
    resource_owner_id bigint REFERENCES users (id),
    application_id bigint NOT NULL REFERENCES oauth_applications (id),
    token character varying NOT NULL,
    refresh_token character varying,
    expires_in integer,
    revoked_at timestamp without time zone,
    created_at timestamp without time zone NOT NULL,
    scopes character varying,
    previous_refresh_token character varying DEFAULT ''::character varying NOT NULL
);

CREATE TABLE issues (
    id integer NOT NULL PRIMARY KEY,
    reportable_type character varying NOT NULL,
    reportable_id integer NOT NULL,
    reported_user_id integer REFERENCES users (id),
    status issue_status_enum DEFAULT 'open'::issue_status_enum NOT NULL,
    assigned_role user_role_enum NOT NULL,
    resolved_at timestamp without time zone,
    resolved_by integer REFERENCES users (id),
    updated_by integer REFERENCES users (id),
    reports_count integer DEFAULT 0,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);

CREATE TABLE reports (
    id integer NOT NULL PRIMARY KEY,
    issue_id integer NOT NULL REFERENCES issues (id),
    user_id integer NOT NULL REFERENCES users (id),
    details text NOT NULL,
    category character varying NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);
