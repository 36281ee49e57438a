namespace MitmCache.Core.Tests.Caching;

/// <summary>
/// A write-only stream standing in for a client response: it keeps what it receives, can be observed
/// from another thread while a copy runs, and can be told to fail like a client that went away.
/// </summary>
internal sealed class RecordingStream : Stream
{
    private readonly MemoryStream _received = new();
    private readonly Lock _gate = new();
    private TaskCompletionSource _written = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public bool FailWrites { get; set; }

    public long Count
    {
        get
        {
            lock (_gate)
            {
                return _received.Length;
            }
        }
    }

    public byte[] ToArray()
    {
        lock (_gate)
        {
            return _received.ToArray();
        }
    }

    /// <summary>Waits until at least <paramref name="count"/> bytes arrived; fails the test after 10 seconds.</summary>
    public async Task WaitForCountAsync(long count)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            Task written;
            lock (_gate)
            {
                if (_received.Length >= count)
                {
                    return;
                }

                written = _written.Task;
            }

            try
            {
                await written.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                Assert.Fail($"received {Count} of {count} bytes before the deadline");
            }
        }
    }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (FailWrites)
        {
            throw new IOException("the client reset the connection");
        }

        TaskCompletionSource written;
        lock (_gate)
        {
            _received.Write(buffer);
            written = _written;
            _written = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        written.SetResult();
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
