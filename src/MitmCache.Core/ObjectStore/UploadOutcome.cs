namespace MitmCache.ObjectStore;

/// <summary>What one upload of a committed local blob did.</summary>
internal enum UploadOutcome
{
    /// <summary>The object is in the bucket now.</summary>
    Uploaded,

    /// <summary>The local file is gone (evicted meanwhile): nothing to upload.</summary>
    SourceMissing,

    /// <summary>The local file no longer matches its digest: never uploaded (the local cache's verify deals with the file).</summary>
    SourceCorrupt,

    /// <summary>The engine failed or the breaker is open: try again later.</summary>
    Unavailable,
}
