using MitmCache.Registry;

namespace MitmCache.Configuration;

/// <summary>
/// The data directory, described once (as distribution's registry/storage/paths.go does); every path
/// into it is built here.
/// <code>
/// DATA/                              0700, owned by the user the proxy runs as
///   index.db                         LiteDB: blobs, links, tags, uploads, visibility, challenges, grants (IndexSchema)
///   index-log.db                     LiteDB's write-ahead log, beside it
///   index.db.lock                    held (flock) by the one process that has the index open
///   index.db.corrupt-&lt;time&gt;[-log]    an unreadable index (and its log), moved aside before the rebuild
///   ca/root.crt                      the root CA certificate (0644), what nodes trust
///   ca/root.key                      its private key (0600)
///   ca/grants.key                    the HMAC key grants are keyed by (0600)
///   blobs/sha256/ab/&lt;64 hex&gt;         content-addressed blobs and manifests, verified
///   tmp/&lt;16 hex&gt;.&lt;guid&gt;.part         fills in progress, moved into blobs/ once verified
/// </code>
/// </summary>
public sealed record DataLayout
{
    public const string IndexFileName = "index.db";

    public DataLayout(string root) => Root = Path.GetFullPath(root);

    public string Root { get; }

    public string Index => Path.Combine(Root, IndexFileName);

    public string IndexLock => LockOf(Index);

    /// <summary>The lock file of an index at <paramref name="indexPath"/> (tests and tools open indexes elsewhere too).</summary>
    public static string LockOf(string indexPath) => indexPath + ".lock";

    /// <summary>LiteDB's log file beside an index: <c>index.db</c> → <c>index-log.db</c>.</summary>
    public static string LogOf(string indexPath) => Path.ChangeExtension(indexPath, null) + "-log.db";

    /// <summary>Where an unreadable index is moved, stamped with the time it was found so.</summary>
    public static string CorruptCopyOf(string indexPath, DateTimeOffset at) => $"{indexPath}.corrupt-{at:yyyyMMddTHHmmssZ}";

    public CaFiles Ca => new(Path.Combine(Root, "ca"));

    /// <summary>The root of the content-addressed store, ending in a separator (for prefix checks).</summary>
    public string Blobs => Path.Combine(Root, "blobs") + Path.DirectorySeparatorChar;

    /// <summary>Where fills are written before they are verified, ending in a separator; on the same file system as <see cref="Blobs"/>.</summary>
    public string Temp => Path.Combine(Root, "tmp") + Path.DirectorySeparatorChar;

    /// <summary>
    /// <c>blobs/sha256/ab/&lt;hex&gt;</c>, only ever from a parsed digest, and checked to stay under
    /// <see cref="Blobs"/> (after BaGet's FileStorageService.GetFullPath).
    /// </summary>
    internal string BlobPath(Digest digest)
    {
        var path = Path.GetFullPath(Path.Combine(Blobs, digest.RelativePath));
        return path.StartsWith(Blobs, StringComparison.Ordinal)
            ? path
            : throw new InvalidOperationException($"digest path escapes the blob root: {digest}");
    }

    /// <summary>A new <c>tmp/&lt;16 hex&gt;.&lt;guid&gt;.part</c> for a fill of <paramref name="digest"/>.</summary>
    internal string NewTempPath(Digest digest) => Path.Combine(Temp, $"{digest.Hex[..16]}.{Guid.NewGuid():N}.part");

    /// <summary>The entries that must belong to the user the proxy runs as, when they exist.</summary>
    public IEnumerable<string> OwnedEntries =>
        [Root, Index, IndexLock, Ca.Directory, Ca.Certificate, Ca.Key, Ca.GrantsKey, Blobs, Temp];
}

/// <summary>The root CA's directory: its certificate, its key and the grant key beside them.</summary>
public sealed record CaFiles(string Directory)
{
    public string Certificate => Path.Combine(Directory, "root.crt");

    public string Key => Path.Combine(Directory, "root.key");

    public string GrantsKey => Path.Combine(Directory, "grants.key");
}
