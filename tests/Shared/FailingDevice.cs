namespace Audience.Testing;

/// <summary>A FASTER device whose every write and read fails, as a full or vanished disk does: for the event log's fault path.</summary>
public sealed class FailingDevice() : FASTER.core.StorageDeviceBase("failing", 512, -1)
{
    private const uint IoError = 5; // EIO

    public override void WriteAsync(IntPtr sourceAddress, int segmentId, ulong destinationAddress, uint numBytesToWrite,
        FASTER.core.DeviceIOCompletionCallback callback, object context) =>
        ThreadPool.QueueUserWorkItem(_ => callback(IoError, 0, context));

    public override void ReadAsync(int segmentId, ulong sourceAddress, IntPtr destinationAddress, uint readLength,
        FASTER.core.DeviceIOCompletionCallback callback, object context) =>
        ThreadPool.QueueUserWorkItem(_ => callback(IoError, 0, context));

    public override void RemoveSegmentAsync(int segment, AsyncCallback callback, IAsyncResult result) => callback(result);

    public override void Dispose()
    {
    }
}
