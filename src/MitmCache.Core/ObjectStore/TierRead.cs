namespace MitmCache.ObjectStore;

/// <summary>
/// An object opened for reading. When <see cref="Outcome"/> is <see cref="TierOutcome.Found"/>, <see cref="Body"/>
/// streams it from <see cref="Offset"/> to the end, <see cref="Length"/> is the whole object's size, and the
/// caller verifies the digest as it reads: an object whose bytes do not match its name must be reported with
/// <see cref="S3BlobTier.DeleteCorruptAsync"/> and never served. A body that breaks off or stalls throws
/// <see cref="IOException"/> (and opens the breaker); the caller goes on from upstream, with a Range from
/// where it got to. Read it promptly (a fill reads as fast as its disk writes): a body left unread for the
/// stall timeout counts as a stalled engine.
/// </summary>
internal sealed class TierRead : IAsyncDisposable, IDisposable
{
    public static readonly TierRead NotFound = new(TierOutcome.NotFound);
    public static readonly TierRead Unavailable = new(TierOutcome.Unavailable);

    private TierRead(TierOutcome outcome) => Outcome = outcome;

    public TierRead(Stream body, long length, long offset, string? mediaType)
    {
        Outcome = TierOutcome.Found;
        Body = body;
        Length = length;
        Offset = offset;
        MediaType = mediaType;
    }

    public TierOutcome Outcome { get; }

    public Stream? Body { get; }

    public long Length { get; }

    public long Offset { get; }

    public string? MediaType { get; }

    public void Dispose() => Body?.Dispose();

    public ValueTask DisposeAsync() => Body?.DisposeAsync() ?? ValueTask.CompletedTask;
}
