using MitmCache.ObjectStore;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// The collections of <c>index.db</c> and the documents each holds: the index's on-disk format, in one place
/// (as <see cref="Configuration.DataLayout"/> is for paths). Names and document shapes stay as they are, so an
/// index written by an older version opens unchanged (IndexDatabaseTests opens one); a new index is
/// only ever added, by the store that needs it.
/// </summary>
internal static class IndexSchema
{
    /// <summary><see cref="BlobRecords"/>: one per cached blob or manifest.</summary>
    public const string Blobs = "blobs";

    /// <summary><see cref="LinkRecords"/>: which repositories a digest came through.</summary>
    public const string Links = "links";

    /// <summary><see cref="TagRecords"/>: tag to manifest digest, per Accept set.</summary>
    public const string Tags = "tags";

    /// <summary><see cref="UploadQueue"/>: blobs still to upload to the blob store.</summary>
    public const string Uploads = "blob_uploads";

    /// <summary><see cref="RepositoryVisibility"/>: public or private, per repository.</summary>
    public const string Repositories = "repositories";

    /// <summary><see cref="ChallengeRecords"/>: each registry's last answer to a client without credentials.</summary>
    public const string Challenges = "challenges";

    /// <summary><see cref="GrantRecords"/>: which credential may pull which repository, until when.</summary>
    public const string Grants = "grants";

    /// <summary>Every collection and the type its documents are read as (what opening the index checks).</summary>
    public static readonly IReadOnlyList<(string Name, Type Document)> Documents =
    [
        (Blobs, typeof(BlobRecord)),
        (Links, typeof(LinkRecord)),
        (Tags, typeof(TagRecord)),
        (Uploads, typeof(UploadRecord)),
        (Repositories, typeof(RepositoryRecord)),
        (Challenges, typeof(ChallengeRecord)),
        (Grants, typeof(GrantRecord)),
    ];
}
