using System.IO.Pipelines;
using Microsoft.Win32.SafeHandles;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.Caching;

internal enum BlobSourceKind
{
    /// <summary>A committed file.</summary>
    Committed,
    /// <summary>A fill still growing (or just ended): read as it lands.</summary>
    Filling,
    /// <summary>The origin's body, not cached (the temp file could not be created).</summary>
    PassThrough,
    /// <summary>Not from the cache now (storage degraded, or a fill this client may not share): relay upstream's answer.</summary>
    Bypass,
    /// <summary>The origin refused: <see cref="BlobSource.Refusal"/> is the client's answer.</summary>
    Refused,
    /// <summary>The origin could not be asked: <see cref="BlobSource.Fault"/>.</summary>
    Unreachable,
    /// <summary>Fills of this blob kept failing.</summary>
    Exhausted,
}

/// <summary>
/// Where the bytes of one read come from, as <see cref="BlobCache.OpenAsync"/> decided: the endpoint streams it with
/// <see cref="CopyToAsync"/> and never sees a path. Disposing releases the file or body.
/// </summary>
internal sealed class BlobSource : IDisposable
{
    private readonly SafeFileHandle? _file;
    private readonly BlobFill? _fill;
    private readonly OriginBody? _body;

    private BlobSource(BlobSourceKind kind, Digest digest, long? size = null, string mediaType = "", SafeFileHandle? file = null, BlobFill? fill = null,
        OriginBody? body = null)
    {
        Kind = kind;
        Digest = digest;
        Size = size;
        MediaType = mediaType;
        _file = file;
        _fill = fill;
        _body = body;
    }

    public BlobSourceKind Kind { get; }

    public Digest Digest { get; }

    /// <summary>The blob's size; null for a fill whose origin did not announce it.</summary>
    public long? Size { get; }

    public string MediaType { get; }

    /// <summary>For <see cref="BlobSourceKind.Filling"/>: this reader joined a fill another request started.</summary>
    public bool Joined { get; private init; }

    /// <summary>
    /// For <see cref="BlobSourceKind.Committed"/>: the file was committed by the fill this read started or joined (it
    /// finished before the read could open the growing file), so the bytes came from upstream for this read.
    /// </summary>
    public bool Filled { get; private init; }

    public OriginRefusal? Refusal { get; private init; }

    public OriginFault? Fault { get; private init; }

    /// <param name="filledBy">Set when the read's own fill committed the file: <c>true</c> if it had joined that fill.</param>
    public static BlobSource Committed(CachedBlob blob, SafeFileHandle file, bool? filledBy = null) =>
        new(BlobSourceKind.Committed, blob.Digest, blob.Record.Size, blob.Record.MediaType, file) { Filled = filledBy is not null, Joined = filledBy == true };

    public static BlobSource Filling(BlobFill fill, FillHead head, SafeFileHandle file, bool joined) =>
        new(BlobSourceKind.Filling, fill.Digest, head.Size, head.MediaType, file, fill) { Joined = joined };

    public static BlobSource PassThrough(Digest digest, OriginBody body) =>
        new(BlobSourceKind.PassThrough, digest, body.Length, body.MediaType, body: body);

    public static BlobSource Bypass(Digest digest) => new(BlobSourceKind.Bypass, digest);

    public static BlobSource Refused(Digest digest, OriginRefusal refusal) => new(BlobSourceKind.Refused, digest) { Refusal = refusal };

    public static BlobSource Unreachable(Digest digest, OriginFault fault) => new(BlobSourceKind.Unreachable, digest) { Fault = fault };

    public static BlobSource Exhausted(Digest digest) => new(BlobSourceKind.Exhausted, digest);

    /// <summary>
    /// Copies <paramref name="length"/> bytes from <paramref name="start"/> (<see cref="long.MaxValue"/>: to the end).
    /// A fill's reader gets <see cref="ReadOutcome.SourceFailed"/> when the fill fails, and never its last byte before
    /// the digest is verified.
    /// </summary>
    /// <param name="verify">Hash a whole committed file on the way out, and stop short of its end if it does not match.</param>
    public async Task<(ReadOutcome Outcome, long Bytes)> CopyToAsync(PipeWriter output, long start, long length, bool verify, CancellationToken cancellationToken)
    {
        if (_file is not null)
        {
            Digest? check = verify && _fill is null && start == 0 && length == Size ? Digest : null;
            return await BlobReader.CopyAsync(_file, start, length, output, _fill, cancellationToken, check);
        }

        if (_body is null)
        {
            throw new InvalidOperationException($"a {Kind} source has no bytes");
        }

        // The origin's body, as it comes: skip to the start, then relay what was asked for.
        if (start > 0)
        {
            var skipped = await StreamCopier.CopyAsync(new LimitedStream(_body.Body, start), Stream.Null, cancellationToken);
            if (skipped.Failure != CopyFailure.None || skipped.Bytes != start)
            {
                return (ReadOutcome.SourceFailed, 0);
            }
        }

        var copy = await StreamCopier.CopyAsync(length == long.MaxValue ? _body.Body : new LimitedStream(_body.Body, length), output.AsStream(leaveOpen: true), cancellationToken);
        return copy.Failure switch
        {
            CopyFailure.None when length == long.MaxValue || copy.Bytes == length => (ReadOutcome.Completed, copy.Bytes),
            CopyFailure.Write or CopyFailure.Canceled => (ReadOutcome.ClientGone, copy.Bytes),
            _ => (ReadOutcome.SourceFailed, copy.Bytes),
        };
    }

    /// <summary>For a fill's reader whose copy failed: whether the disk failed the fill (then the rest may come from the origin).</summary>
    public async Task<bool> DiskFailedAsync() => _fill is not null && await _fill.Completion == FillOutcome.StorageError;

    public void Dispose()
    {
        _file?.Dispose();
        _body?.Dispose();
        Refusal?.Dispose();
    }
}
