namespace MitmCache.Upstream;

/// <summary>What every forward-only body wrapper shares (the S3 tier's, the cluster tier's resuming body): read-only, forward-only, no length; the array reads go to the <see cref="Memory{T}"/> one.</summary>
internal abstract class ReadOnlyBodyStream : ForwardOnlyStream
{
    public override bool CanRead => true;

    public override bool CanWrite => false;

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>The asynchronous read, waited for: for a caller that insists on reading synchronously. A body that can read
    /// without waiting on a task overrides it.</summary>
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
