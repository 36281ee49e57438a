namespace MitmCache.ObjectStore;

/// <summary>
/// A committed blob or manifest still to be uploaded to the blob store, persisted in the index (collection
/// <c>blob_uploads</c>) so a restart does not lose it. A LiteDB document: a plain class with setters.
/// </summary>
public sealed class UploadRecord
{
    /// <summary>The digest (<c>sha256:hex</c>).</summary>
    public string Id { get; set; } = "";

    public string MediaType { get; set; } = "application/octet-stream";

    public DateTime EnqueuedAt { get; set; }

    /// <summary>Attempts that failed on this object while the engine was otherwise answering.</summary>
    public int Attempts { get; set; }

    public DateTime NextAttemptAt { get; set; }
}
